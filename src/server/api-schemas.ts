// Response schemas of the JSON API (zod). Handlers type their bodies against these (`satisfies z.input<…>`),
// /openapi.json is generated from them, and test/openapi.test.ts validates real responses against the result.
import { z } from 'zod';
import { PreprocessingSpecSchema } from '../image/preprocess.js';
import { Manifest, Provenance } from '../models/manifest.js';
import { JOB_STATUSES } from '../jobs/store.js';

export const HealthResponse = z.object({ status: z.literal('ok'), uptime_s: z.number().int() });

export const InfoResponse = z.object({
  name: z.literal('convserve'),
  version: z.string(),
  node: z.string(),
  onnxruntime: z.object({ version: z.string(), execution_providers: z.array(z.string()), workers: z.number().int(), threads: z.number().int(), runs: z.number().int(), worker_restarts: z.number().int() }),
  tfjs: z.object({
    state: z.enum(['probing', 'done', 'failed']),
    backend: z.string().optional(),
    tf_backend: z.string().optional(),
    tried: z.array(z.object({ name: z.string(), ok: z.boolean(), error: z.string().optional() })).optional(),
    error: z.string().optional(),
  }).describe('TensorFlow.js backend selection (tfjs-node-gpu → tfjs-node → wasm → cpu), probed once in a child process'),
});

const TaskState = z.object({ state: z.enum(['pending', 'done', 'failed']), error: z.string().optional() });
export const ReadyResponse = z.object({
  status: z.enum(['ready', 'not-ready']),
  ready: z.boolean(),
  tasks: z.record(z.string(), TaskState),
  checks: z.record(z.string(), z.string()),
});

export const KernelsResponse = z.object({
  kernels: z.array(z.object({
    name: z.string(),
    matrix: z.array(z.array(z.number())),
    scale: z.number(),
    zero_sum: z.boolean(),
    description: z.string(),
  })),
  custom: z.object({ max_size: z.number().int(), sizes: z.string() }),
});

export const WeightsInfoSchema = z.object({
  provenance: Provenance,
  untrained: z.boolean().describe('true for synthetic (seeded random) weights: predictions are meaningless'),
  source: z.string().optional(),
  note: z.string().optional(),
}).meta({ id: 'WeightsInfo' });

export const ModelInfo = z.object({
  name: z.string(),
  status: z.enum(['ready', 'loading', 'missing', 'downloading', 'error']),
  architecture: z.string().optional(),
  task: z.enum(['classification', 'features']).optional(),
  input: Manifest.shape.input.optional(),
  classes: z.number().int().optional(),
  preprocessing: PreprocessingSpecSchema.optional(),
  weights: WeightsInfoSchema.optional(),
  created_at: z.string().optional(),
  percent: z.number().optional(),
  error: z.string().optional(),
  install: z.array(z.string()).optional().describe('commands that install a missing model'),
  engine: z.object({ state: z.enum(['loading', 'loaded', 'failed']), load_ms: z.number().optional(), error: z.string().optional() }).optional(),
}).meta({ id: 'ModelInfo' });

export const ModelsResponse = z.object({ models: z.array(ModelInfo) });

/** GET /v1/models/{name}: the catalogue entry plus what an imported model's manifest says about its graph. */
export const ModelDetailResponse = ModelInfo.extend({
  outputs: Manifest.shape.outputs.describe('what the output values are: probabilities (softmax), logits (softmax applied when classifying), sigmoid (multi-label), features (a feature map)'),
  output: Manifest.shape.output.optional(),
  layers: Manifest.shape.layers.describe('every layer one can fetch by name (DeepDream, style transfer): its Keras name, class and output shape (NHWC, null = batch or open size); present for imported models'),
  source: Manifest.shape.source.describe('the file an imported model came from: its layout and the Keras version that wrote it'),
  labels: z.array(z.string()).optional().describe('class labels, in output order (classification models)'),
}).meta({ id: 'ModelDetail' });

const Prediction = z.object({ index: z.number().int(), wnid: z.string().optional(), label: z.string(), probability: z.number() }).meta({ id: 'Prediction' });
const Timing = z.object({ decode: z.number(), preprocess: z.number(), queue: z.number(), infer: z.number() });

const OutputsNote = z.enum(['logits', 'sigmoid']).optional()
  .describe('absent: the model ends with a softmax. logits: it ends linear and convserve applied the softmax. sigmoid: a multi-label model, each probability is its class\'s own (they need not sum to 1)');

export const ClassifySingleResponse = z.object({
  model: z.string(),
  weights: WeightsInfoSchema,
  outputs: OutputsNote,
  predictions: z.array(Prediction),
  timing_ms: Timing,
  batch_size: z.number().int(),
});
export const ClassifyManyResponse = z.object({
  model: z.string(),
  weights: WeightsInfoSchema,
  outputs: OutputsNote,
  results: z.array(z.object({ image: z.number().int(), filename: z.string().optional(), predictions: z.array(Prediction), timing_ms: Timing, batch_size: z.number().int() })),
});
export const ClassifyResponse = z.union([ClassifySingleResponse, ClassifyManyResponse]);

export const ProgressSchema = z.object({
  step: z.number().int(),
  total: z.number().int(),
  fraction: z.number(),
  message: z.string(),
  metrics: z.record(z.string(), z.number()),
  step_ms: z.number().optional(),
  eta_s: z.number().optional(),
}).meta({ id: 'Progress' });

const JobLinks = z.object({ self: z.string(), events: z.string(), result: z.string(), cancel: z.string() });
const JobStatusSchema = z.enum(JOB_STATUSES as [string, ...string[]]);

export const JobViewSchema = z.object({
  id: z.string(),
  kind: z.string(),
  status: JobStatusSchema,
  progress: ProgressSchema,
  created_at: z.string(),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
  error: z.object({ type: z.string(), detail: z.string() }).optional(),
  result: z.object({ url: z.string(), content_type: z.string() }).optional(),
  previews: z.array(z.string()),
  params: z.unknown(),
  queue_position: z.number().int().optional(),
  worker: z.object({ id: z.string(), host: z.string(), pid: z.number().int() }).optional()
    .describe('distributed mode (CONVSERVE_REDIS_URL): the worker process running the job, while it runs'),
  links: JobLinks,
}).meta({ id: 'Job' });

export const JobListResponse = z.object({ jobs: z.array(JobViewSchema) });
export const JobSubmittedResponse = z.object({ id: z.string(), kind: z.string(), status: JobStatusSchema, links: JobLinks });
export const JobKindsResponse = z.object({
  kinds: z.array(z.object({
    name: z.string(),
    description: z.string(),
    inputs: z.array(z.object({ name: z.string(), required: z.boolean(), max_count: z.number().int() })),
    submit: z.string(),
  })),
});

export const SamplesResponse = z.object({ samples: z.array(z.object({ name: z.string(), url: z.string(), bytes: z.number().int() })) });

export const ImageResponses = { 'image/png': 'binary', 'image/jpeg': 'binary', 'image/webp': 'binary' } as const;

export const ReloadResponse = z.object({
  added: z.array(z.string()).describe('models that appeared'),
  changed: z.array(z.string()).describe('models whose folder was replaced (reloaded if they were loaded)'),
  removed: z.array(z.string()).describe('models that disappeared'),
  models: z.array(z.object({
    name: z.string(),
    status: z.string(),
    error: z.string().optional(),
    engine: z.object({ state: z.enum(['loading', 'loaded', 'failed']), load_ms: z.number().optional(), error: z.string().optional() }).optional(),
  })),
});
