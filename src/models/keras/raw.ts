// What every Keras file reader returns: the model config exactly as stored (either dialect; the converter's
// normalizeConfig turns it into a KModel) and every weight, already attributed to its layer and named by role.
import type { KerasFileFormat, KWeight } from './ir.js';

export interface RawKerasFile {
  format: KerasFileFormat;
  /** As recorded in the file ('2.3.1', '3.12.1'); null when the file does not say. */
  kerasVersion: string | null;
  /** The model config as stored: `{class_name, config, …}` (Keras 2/tfjs or Keras 3 dialect). */
  config: unknown;
  /**
   * Layer path → its weights in Keras variable order. The path is the layer's name, or
   * `<nested model>/<layer>` (recursively) for a layer inside a nested model. Weightless layers are absent.
   */
  weights: Map<string, KWeight[]>;
}
