// Whether a fine-tune's validation result means anything: a loud warning (CLI, report.json, report.png) when the
// validation accuracy is within a few points of chance, or when the validation set is too small to judge.

/** Accuracy within this many points of chance (1 / classes) is "no better than guessing". */
export const NEAR_CHANCE_POINTS = 0.1;
/** Fewer validation images than this per class (or 20 in all) cannot tell a good model from a lucky one. */
export const MIN_VAL_PER_CLASS = 5;
export const MIN_VAL_TOTAL = 20;

export function validationWarnings(accuracy: number, classes: number, perClassVal: number[]): string[] {
  const warnings: string[] = [];
  const chance = 1 / classes;
  const total = perClassVal.reduce((a, b) => a + b, 0);
  if (accuracy <= chance + NEAR_CHANCE_POINTS) {
    warnings.push(`validation accuracy ${(accuracy * 100).toFixed(1)} % is within ${NEAR_CHANCE_POINTS * 100} points of chance (${(chance * 100).toFixed(1)} % for ${classes} classes): the model has not learned to tell the classes apart — more images per class, a different --feature-layer or base, or a longer schedule (--min-steps)`);
  }
  const smallest = Math.min(...perClassVal);
  if (total < MIN_VAL_TOTAL || smallest < MIN_VAL_PER_CLASS) {
    warnings.push(`the validation set is too small to judge (${total} images, ${smallest} in the smallest class; want ≥ ${MIN_VAL_TOTAL} and ≥ ${MIN_VAL_PER_CLASS} per class): its accuracy can be far from the accuracy on new images — add images or raise --val-split`);
  }
  return warnings;
}
