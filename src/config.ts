// Every tunable and every limit in one table: environment variable, default, meaning. The README's
// configuration table is generated from this list (`convserve config --markdown`), so it cannot drift.
import { z } from 'zod';

interface Setting<T> {
  env: string;
  default: T;
  description: string;
  schema: z.ZodType<T>;
}

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);
const num = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().min(min).max(max);
const bool = z.union([z.boolean(), z.enum(['1', '0', 'true', 'false', 'yes', 'no'])]).transform((v) => v === true || v === '1' || v === 'true' || v === 'yes');
const str = z.string().min(1);
const LOOPBACK_HOSTS = new Set(['localhost', '[::1]']);
/** Weights are downloaded over https; plain http only from this machine (a local mirror, tests), never across a network. */
export function isAllowedDownloadUrl(u: string): boolean {
  let url: URL;
  try { url = new URL(u); } catch { return false; }
  return url.protocol === 'https:' || (url.protocol === 'http:' && (LOOPBACK_HOSTS.has(url.hostname) || /^127\.\d+\.\d+\.\d+$/.test(url.hostname)));
}
const weightsUrl = z.string().refine(isAllowedDownloadUrl, 'must be an https:// URL (http:// only to a loopback host)');
const KIND_LIMITS_RE = /^([a-z0-9][a-z0-9-]{0,63}=\d{1,12})(,[a-z0-9][a-z0-9-]{0,63}=\d{1,12})*$/;
const kindLimits = z.string().refine((s) => s === '' || KIND_LIMITS_RE.test(s.replace(/\s+/g, '')), 'expected kind=ms pairs, comma-separated (e.g. blur-sweep=600000,dream=1800000)');

function setting<T>(env: string, def: T, schema: z.ZodType<T>, description: string): Setting<T> {
  return { env, default: def, schema, description };
}

export const SETTINGS = {
  port: setting('PORT', 8080, int(0, 65535), 'TCP port the HTTP server listens on (0 = any free port).'),
  host: setting('HOST', '127.0.0.1', str, 'Address the HTTP server binds to. Loopback by default; any other address (e.g. 0.0.0.0) needs API keys or CONVSERVE_ALLOW_ANONYMOUS=true.'),
  apiKeysFile: setting('CONVSERVE_API_KEYS_FILE', '', z.string(), 'JSON file of API keys `[{"id","key_sha256","scopes":["use"|"admin"]}]` (only hashes; `convserve keys add` writes it). When keys are configured every /v1 route needs one.'),
  apiKeys: setting('CONVSERVE_API_KEYS', '', z.string(), 'The same JSON array inline (for containers); added to the keys of CONVSERVE_API_KEYS_FILE.'),
  allowAnonymous: setting('CONVSERVE_ALLOW_ANONYMOUS', false, bool, 'Without API keys, allow binding to a non-loopback HOST anyway (everyone who can reach the port can use, reload and read everything).'),
  metricsPublic: setting('CONVSERVE_METRICS_PUBLIC', false, bool, 'With API keys: serve GET /metrics without a key (otherwise it needs the admin scope).'),
  allowedHosts: setting('CONVSERVE_ALLOWED_HOSTS', '', z.string(), 'Comma-separated Host names accepted (against DNS rebinding; `*` = any). Always accepted: IP addresses, localhost and HOST. Unset: only those without API keys, any name with keys.'),
  corsOrigins: setting('CONVSERVE_CORS_ORIGINS', '', z.string(), 'Comma-separated origins (`https://app.example`) allowed to call the API from a browser (CORS, and POST/DELETE with that Origin); `*` = any. Unset: CORS off, foreign origins get 403 on POST/DELETE.'),
  headersTimeoutMs: setting('CONVSERVE_HEADERS_TIMEOUT_MS', 20_000, int(1000), 'Longest time a client may take to send the request headers (slow-header clients are cut off).'),
  requestTimeoutMs: setting('CONVSERVE_REQUEST_TIMEOUT_MS', 300_000, int(1000), 'Longest time a client may take to send a whole request (headers and upload).'),
  keepAliveTimeoutMs: setting('CONVSERVE_KEEP_ALIVE_TIMEOUT_MS', 5_000, int(100), 'How long an idle keep-alive connection stays open.'),
  maxConnections: setting('CONVSERVE_MAX_CONNECTIONS', 512, int(1), 'Most simultaneous TCP connections; more are refused by the server.'),
  maxEventStreams: setting('CONVSERVE_MAX_EVENT_STREAMS', 256, int(1), 'Most open job event streams (SSE) in total; more answer 503 with Retry-After.'),
  maxEventStreamsPerJob: setting('CONVSERVE_MAX_EVENT_STREAMS_PER_JOB', 8, int(1), 'Most open event streams of one job; more answer 429 with Retry-After.'),
  shutdownTimeoutMs: setting('CONVSERVE_SHUTDOWN_TIMEOUT_MS', 10_000, int(0), 'On SIGTERM/SIGINT: how long in-flight requests may take to finish before the process exits anyway.'),
  maxUploadBytes: setting('CONVSERVE_MAX_UPLOAD_BYTES', 25 * 1024 * 1024, int(1), 'Largest accepted image upload, in bytes (413 above).'),
  maxInputPixels: setting('CONVSERVE_MAX_INPUT_PIXELS', 50_000_000, int(1), 'Largest accepted image, width × height, checked from the header before decoding (413 above).'),
  decodeTimeoutMs: setting('CONVSERVE_DECODE_TIMEOUT_MS', 10_000, int(1), 'Longest time one image decode may take (422 when exceeded).'),
  maxFilesPerRequest: setting('CONVSERVE_MAX_FILES', 16, int(1, 256), 'Most images in one /v1/classify request (the filter takes 1, a dream 1, a style 1 content + up to 8 style images).'),
  maxFormFields: setting('CONVSERVE_MAX_FIELDS', 50, int(1, 10_000), 'Most non-file fields in one multipart request (413 above).'),
  maxFormFieldBytes: setting('CONVSERVE_MAX_FIELD_BYTES', 64 * 1024, int(1), 'Largest non-file multipart field value, in bytes (413 above).'),
  uploadBudgetBytes: setting('CONVSERVE_UPLOAD_BUDGET_BYTES', 512 * 1024 * 1024, int(1), 'Upload bytes held in memory across all requests at once; a request that would exceed it answers 503 with Retry-After before its body is read. A request reserves its Content-Length, or without one the most its route accepts.'),
  maxKernelSize: setting('CONVSERVE_MAX_KERNEL_SIZE', 15, int(1, 15), 'Largest custom filter kernel side (odd, ≤ 15 — sharp\'s own limit).'),
  maxFilterPixels: setting('CONVSERVE_MAX_FILTER_PIXELS', 25_000_000, int(1), 'Largest image the filter endpoint will convolve (width × height; 413 above).'),
  modelsDir: setting('CONVSERVE_MODELS_DIR', './models', str, 'Folder with one sub-folder per model (model.onnx, weights, labels.json, manifest.json).'),
  dataDir: setting('CONVSERVE_DATA_DIR', './data', str, 'Folder for durable job records, inputs, previews and results.'),
  weightsBaseUrl: setting('CONVSERVE_WEIGHTS_BASE_URL', 'https://storage.googleapis.com', weightsUrl, 'Origin the official Keras .h5 weights and imagenet_class_index.json are downloaded from (a mirror must keep the same paths). https only; http only to a loopback host (a local mirror, tests).'),
  autoFetch: setting('CONVSERVE_AUTO_FETCH', true, bool, 'At start, download missing VGG19/InceptionV3 ImageNet weights in the background (needs network).'),
  autoInstall: setting('CONVSERVE_AUTO_INSTALL', true, bool, "At start, install the embedded `content-moderation` model (nsfwjs's trained InceptionV3, shipped in node_modules: no network) in the background when it is missing."),
  engineWorkers: setting('CONVSERVE_ENGINE_WORKERS', 1, int(1, 16), 'Inference worker threads (each owns its ORT sessions).'),
  engineThreads: setting('CONVSERVE_ENGINE_THREADS', 0, int(0, 256), 'ORT intra-op threads per worker (0 = number of CPU cores).'),
  defaultModel: setting('CONVSERVE_DEFAULT_MODEL', 'vgg19', str, 'Model used by /v1/classify when the request names none.'),
  maxBatch: setting('CONVSERVE_MAX_BATCH', 8, int(1, 64), 'Largest batch the classification queue forms from concurrent requests.'),
  batchWaitMs: setting('CONVSERVE_BATCH_WAIT_MS', 0, int(0, 1000), 'How long the classification queue waits for more requests before running a batch.'),
  inferTimeoutMs: setting('CONVSERVE_INFER_TIMEOUT_MS', 120_000, int(1), 'Longest one inference call may take before the request fails with 503.'),
  engineQueue: setting('CONVSERVE_ENGINE_QUEUE', 64, int(1, 100_000), 'Most interactive inference requests (classify images) waiting for the engine (at least CONVSERVE_MAX_FILES); one more answers 429 with Retry-After.'),
  interactiveDeadlineMs: setting('CONVSERVE_INTERACTIVE_DEADLINE_MS', 60_000, int(0), 'Longest an interactive inference (classify) may take from queueing to result when the request brings no deadline of its own (503 deadline-exceeded beyond; 0 = none).'),
  engineArena: setting('CONVSERVE_ENGINE_ARENA', true, bool, 'Classification sessions use ONNX Runtime\'s memory arena: faster runs (without it a forward took ~1.2–1.35× the CPU here); the arena keeps the peak of the largest batch until the session is recycled (CONVSERVE_SESSION_RECYCLE_MS).'),
  enginePrepack: setting('CONVSERVE_ENGINE_PREPACK', false, bool, 'ONNX Runtime pre-packs model weights (MatMul/Gemm) into copies of its own. Off (the default), a model\'s weights stay mapped from its weights file: a session recycle (CONVSERVE_SESSION_RECYCLE_MS) reloads in under half the time and never holds the weights twice (VGG19: +330 MB during each reload with it on). The price, measured idle: fully-connected layers run slower without their packed copy (VGG19 classify +7 %, batch 8 +5 %; convolution-only graphs unchanged) (docs/memory.md).'),
  sessionRecycleMs: setting('CONVSERVE_SESSION_RECYCLE_MS', 30_000, int(0), 'A model session that ran and then sat idle this long is reloaded in place, giving back the memory ONNX Runtime\'s arena kept from its largest batch; a request arriving during the reload waits for it (0 = never).'),
  gradSessions: setting('CONVSERVE_GRAD_SESSIONS', 4, int(1, 64), 'Most gradient sessions (DeepDream layer sets, style recipes) kept built; beyond it the least recently used one not in use is unloaded.'),
  gradSessionIdleMs: setting('CONVSERVE_GRAD_SESSION_IDLE_MS', 30_000, int(0), 'A gradient session unused this long is unloaded from the workers (its memory goes back to the OS); it is reloaded from its built graph when used again (0 = never).'),
  gradSessionArena: setting('CONVSERVE_GRAD_SESSION_ARENA', true, bool, 'Gradient sessions use ONNX Runtime\'s memory arena: faster steps (without it a step took ~1.5× the CPU here), memory given back when the session goes idle.'),
  jobConcurrency: setting('CONVSERVE_JOB_CONCURRENCY', 1, int(1, 16), 'Jobs running at once.'),
  jobQueueLength: setting('CONVSERVE_JOB_QUEUE', 32, int(1, 10_000), 'Most queued (not yet running) jobs; more answers 429 with Retry-After.'),
  jobTtlHours: setting('CONVSERVE_JOB_TTL_HOURS', 24, num(0.001), 'Finished jobs and their files are deleted after this many hours.'),
  jobSweepMs: setting('CONVSERVE_JOB_SWEEP_MS', 60_000, int(1000), 'How often expired job files are looked for (also at start; never less often than the TTL).'),
  jobMaxDiskMb: setting('CONVSERVE_JOB_MAX_DISK_MB', 2048, int(1), 'Disk budget for job files; the oldest finished jobs are expired first when exceeded.'),
  checkpointEverySteps: setting('CONVSERVE_CHECKPOINT_STEPS', 5, int(1), 'A running job is checkpointed at least every this many steps…'),
  checkpointEveryMs: setting('CONVSERVE_CHECKPOINT_MS', 10_000, int(1), '…or this many milliseconds, whichever comes first.'),
  jobWallClockMs: setting('CONVSERVE_JOB_MAX_MS', 30 * 60_000, int(1), 'Wall-clock limit of one job (fails cleanly when exceeded); kinds may set lower ones.'),
  ownerRunningJobs: setting('CONVSERVE_OWNER_RUNNING_JOBS', 2, int(1, 16), 'Jobs of one API key running at once (queued jobs of other keys start first).'),
  ownerQueuedJobs: setting('CONVSERVE_OWNER_QUEUED_JOBS', 8, int(1, 10_000), 'Queued jobs one API key may have; more answers 429. The queue serves keys round-robin.'),
  ownerJobPixelsPerHour: setting('CONVSERVE_OWNER_JOB_PIXELS_PER_HOUR', 200_000_000, int(1), 'Input pixels (width × height of every input image) of the jobs one API key may submit in a sliding hour; more answers 429.'),
  ownerRequestsPerSecond: setting('CONVSERVE_OWNER_RATE', 10, num(0.01, 10_000), 'Interactive requests (classify, filter, explain) one API key may make per second on average (token bucket refill)…'),
  ownerRequestBurst: setting('CONVSERVE_OWNER_BURST', 30, int(1, 100_000), '…and in a burst (bucket size); more answers 429 with Retry-After.'),
  jobKindWallClockMs: setting('CONVSERVE_JOB_KIND_MAX_MS', 'blur-sweep=600000', kindLimits, 'Per-kind wall-clock limits, `kind=ms` comma-separated (the lowest of this, CONVSERVE_JOB_MAX_MS and the kind\'s own applies).'),
  jobMaxPreviews: setting('CONVSERVE_JOB_MAX_PREVIEWS', 100, int(0, 10_000), 'Most previews one job keeps; later ones are not made.'),
  blurSweepStepDelayMs: setting('CONVSERVE_BLUR_SWEEP_STEP_DELAY_MS', 0, int(0, 5000), 'Artificial pause before each blur-sweep step (tests and demos of a slow job); an operator setting, never a request parameter.'),
  maxJobPixels: setting('CONVSERVE_MAX_JOB_PIXELS', 1_048_576, int(1), 'Largest working image of a dream/style job (width × height).'),
  maxJobIterations: setting('CONVSERVE_MAX_JOB_ITERATIONS', 2000, int(1), 'Most iterations one dream/style job may ask for.'),
  redisUrl: setting('CONVSERVE_REDIS_URL', '', z.string().regex(/^(rediss?:\/\/.+)?$/, 'a redis:// or rediss:// URL'), 'Distributed mode: jobs are queued in Redis (BullMQ) and run by `convserve worker` processes sharing CONVSERVE_DATA_DIR. Empty = embedded mode (jobs run in the server process).'),
  redisPrefix: setting('CONVSERVE_REDIS_PREFIX', 'convserve', z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . -'), 'Prefix of every Redis key and channel convserve uses (several deployments can share one Redis).'),
  workerConcurrency: setting('CONVSERVE_WORKER_CONCURRENCY', 1, int(1, 64), 'Jobs one worker process runs at once (`convserve worker --concurrency` overrides); ≈ cores / ORT threads per job.'),
  workerLockMs: setting('CONVSERVE_WORKER_LOCK_MS', 30_000, int(1000), 'BullMQ lockDuration: a worker renews its lock on a running job every half of this; a job whose lock expired (its worker died) is handed to another worker, which resumes it from its checkpoint.'),
  workerStalledCheckMs: setting('CONVSERVE_WORKER_STALLED_MS', 30_000, int(500), 'BullMQ stalledInterval: how often workers look for jobs whose lock expired.'),
  serveWorker: setting('CONVSERVE_SERVE_WORKER', false, bool, 'Distributed mode: the API process also runs job steps (same as `convserve serve --worker`).'),
  finetuneMaxArchiveBytes: setting('CONVSERVE_FINETUNE_MAX_ARCHIVE_BYTES', 256 * 1024 * 1024, int(1), 'Largest training archive (.zip, .tar, .tar.gz) a fine-tune job accepts, in bytes (413 above).'),
  finetuneMaxFiles: setting('CONVSERVE_FINETUNE_MAX_FILES', 10_000, int(1), 'Most entries (files and folders) in a fine-tune job\'s archive (413 above).'),
  finetuneMaxExtractedBytes: setting('CONVSERVE_FINETUNE_MAX_EXTRACTED_BYTES', 512 * 1024 * 1024, int(1), 'Most bytes a fine-tune job\'s archive may unpack to, checked against the sizes the archive declares and the bytes actually inflated (zip bombs: 413). Admission holds the unpacked images in memory while it checks them.'),
  explainMaxPasses: setting('CONVSERVE_EXPLAIN_MAX_PASSES', 256, int(1, 1_000_000), 'Most gradient passes one explanation may take (integrated-gradients steps × SmoothGrad samples); more answers 422, suggesting a job.'),
} as const;

type Settings = typeof SETTINGS;
export type Config = { [K in keyof Settings]: Settings[K]['default'] };

/** Reads the configuration from `env` (default process.env); throws one message listing every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const out: Record<string, unknown> = {};
  const errors: string[] = [];
  for (const [key, s] of Object.entries(SETTINGS) as [keyof Settings, Setting<unknown>][]) {
    if (key in overrides) { out[key] = overrides[key]; continue; }
    const raw = env[s.env];
    if (raw === undefined || raw === '') { out[key] = s.default; continue; }
    const parsed = s.schema.safeParse(raw);
    if (parsed.success) out[key] = parsed.data;
    else errors.push(`${s.env}=${JSON.stringify(raw)}: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
  }
  if (errors.length) throw new Error(`Invalid configuration:\n  ${errors.join('\n  ')}`);
  return out as Config;
}

/** CONVSERVE_JOB_KIND_MAX_MS as a map from kind name to its wall-clock limit in ms. */
export function kindWallClockLimits(spec: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const pair of spec.replace(/\s+/g, '').split(',')) {
    const [kind, ms] = pair.split('=');
    if (kind && ms && Number(ms) > 0) out.set(kind, Number(ms));
  }
  return out;
}

/** The configuration table as Markdown (used for the README and `convserve config`). */
export function configMarkdown(): string {
  const rows = Object.values(SETTINGS).map((s) => `| \`${s.env}\` | \`${String(s.default)}\` | ${s.description} |`);
  return ['| variable | default | meaning |', '|---|---|---|', ...rows].join('\n');
}
