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
  | 'weights-layout'
  /** A layer class or option the converter does not implement (Lambda, custom layers carry Python code). */
  | 'unsupported-layer'
  /** Config and weights disagree: a weighted layer without its weights, weights of no layer, a wrong shape. */
  | 'mismatch'
  /** The model's input is not one image: several inputs, an unknown channel count, a rank other than 3 or 4. */
  | 'unsupported-input'
  /** The input size: unknown and no --input-size given, or --input-size given for a model whose size is fixed. */
  | 'input-size'
  /** The labels file is unreadable, or its count differs from the model's classes. */
  | 'bad-labels'
  /** The --preprocess spec is not one convserve knows, or does not fit the model's input channels. */
  | 'bad-preprocessing'
  /** The model name breaks the folder-name rule. */
  | 'bad-name'
  /** A model folder of that name exists already. */
  | 'name-clash';

export class KerasImportError extends ProblemError {
  /** `info`: extension members of the problem body (the layer, its class, expected/found shapes…). */
  constructor(readonly kind: KerasImportErrorKind, detail: string, readonly file?: string, info: Record<string, unknown> = {}) {
    super(422, `keras-import-${kind}`, 'Cannot import Keras model', detail, { kind, ...(file ? { file } : {}), ...info });
    this.name = 'KerasImportError';
  }
}
