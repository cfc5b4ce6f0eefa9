// Messages between the Engine (main thread) and its ORT worker threads.

/** A float32 tensor crossing the thread boundary; `data`'s buffer is transferred, not copied. */
export interface WireTensor {
  dims: number[];
  data: Float32Array;
}

/** How to create an ORT session: from a .onnx path (external data resolved next to it) or from bytes. */
export type SessionSource = { path: string } | { bytes: Uint8Array };

export interface SessionOptionsSpec {
  intraOpThreads: number;
  executionProviders: string[];
  /** Keep ORT's CPU memory arena (faster; retains peak memory between runs). */
  memArena?: boolean;
  /** Intra-op threads spin while a run lasts (stopped after each run); for a session that has the cores to itself. */
  spinning?: boolean;
  /**
   * Let ORT pre-pack constant weights (MatMul/Gemm B) into its own copies. Off, the weights of a model with an
   * external-data file stay mapped from that file: a reload then copies nothing (docs/memory.md).
   */
  prepack?: boolean;
}

export type ToWorker =
  | { type: 'load'; id: number; key: string; source: SessionSource; options: SessionOptionsSpec }
  | { type: 'unload'; id: number; key: string }
  | { type: 'run'; id: number; key: string; feeds: Record<string, WireTensor>; fetches?: string[] }
  /** Fault injection: the worker exits at once, failing whatever was sent after it (tests, chaos drills). */
  | { type: 'crash'; id: number };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'loaded'; id: number; key: string; inputNames: string[]; outputNames: string[]; ms: number; provider: string }
  | { type: 'unloaded'; id: number }
  /** `inputs`: the run's input tensors handed back (transferred), so the caller can reuse their memory. */
  | { type: 'result'; id: number; outputs: Record<string, WireTensor>; ms: number; inputs?: Record<string, WireTensor> }
  | { type: 'error'; id: number; message: string };
