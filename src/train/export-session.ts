// Session options of the export checks (a one-off ORT session next to the training run; no tfjs involved).
import type * as ort from 'onnxruntime-node';

export const ORT_SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  logSeverityLevel: 3,
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  extra: { session: { intra_op: { allow_spinning: '0' } } },
};
