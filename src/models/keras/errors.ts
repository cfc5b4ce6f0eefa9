// The one error every Keras file reader throws. A reader never guesses: anything it cannot read exactly becomes a
// KerasImportError with a one-line message naming the file and what is wrong, rendered by the HTTP layer as
// 422 application/problem+json `…/keras-import-<kind>` (the CLI prints the message and exits 1).
import { ProblemError } from '../../util/problem.js';

export type KerasImportErrorKind =
  /** The path does not exist or is not a regular file. */
  | 'not-found'
  /** The content is none of the formats the importer knows (checked by content, never by extension). */
  | 'unknown-format'
  /** Shorter than its own header says (an interrupted download or copy). */
  | 'truncated'
  /** The container is damaged or a required part is malformed (HDF5 error, bad zip, invalid JSON). */
  | 'corrupt'
  /** The model config (stored, or given with --config) is not a Keras Sequential/Functional model config. */
  | 'bad-config'
  /** A weights-only file (`save_weights`) was given without the `model.to_json()` file that describes it. */
  | 'missing-config'
  /** A tfjs shard listed in the manifest is not beside model.json. */
  | 'missing-shard'
  /** The shards' total size differs from what the manifest's weights need. */
  | 'shard-size'
  /** The file's weights cannot be attributed to the layers of its own config (unknown group, wrong variable count). */
  | 'weights-layout';

export class KerasImportError extends ProblemError {
  constructor(readonly kind: KerasImportErrorKind, detail: string, readonly file?: string) {
    super(422, `keras-import-${kind}`, 'Cannot import Keras model', detail, { kind, ...(file ? { file } : {}) });
    this.name = 'KerasImportError';
  }
}
