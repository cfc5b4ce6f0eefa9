// Command groups contributed by the feature areas (models, classify, jobs, train…), loaded lazily so
// `convserve filter` does not pay for ORT or tfjs start-up.
import type { Command } from 'commander';

export type RegisterCommands = (program: Command) => void;

export async function extraCommands(): Promise<RegisterCommands[]> {
  const { registerJobsCommands } = await import('./jobs.js');
  const { registerClassifyCommand } = await import('./classify.js');
  const { registerModelsCommands } = await import('./models.js');
  const { registerTrainCommands } = await import('./train.js');
  const { registerGradientOpCommands } = await import('./gradient-ops.js');
  const { registerDoctorCommand } = await import('./doctor.js');
  const { registerWorkerCommand } = await import('./worker.js');
  const { registerExplainCommand } = await import('./explain.js');
  return [registerClassifyCommand, registerModelsCommands, registerJobsCommands, registerTrainCommands, registerGradientOpCommands, registerDoctorCommand, registerWorkerCommand, registerExplainCommand];
}
