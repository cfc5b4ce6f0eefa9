// The shape of a checkpoint: JSON-serialisable metadata and/or named binary blobs (pixels, optimiser moments…).
// Lives at the bottom layer because both job kinds and the optimisers they drive (ops/) write it.
export interface SerializedState {
  json?: unknown;
  buffers?: Record<string, Buffer>;
}
