// ORT worker thread: owns InferenceSessions and runs them, so the HTTP thread never blocks on
// create()/run() (both are synchronous inside onnxruntime-node).
import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { FromWorker, SessionOptionsSpec, ToWorker, WireTensor } from './protocol.js';

if (!parentPort) throw new Error('engine worker must run in a worker thread');
const port = parentPort;
ort.env.logLevel = 'error';

const sessions = new Map<string, ort.InferenceSession>();

function sessionOptions(o: SessionOptionsSpec, providers: string[]): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: providers,
    intraOpNumThreads: o.intraOpThreads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    enableCpuMemArena: o.memArena ?? true,
    logSeverityLevel: 3,
    // Several sessions share the cores: spinning pool threads would steal them from each other. A session that
    // has them to itself (o.spinning) spins inside a run only: force_spinning_stop ends it when the run returns.
    extra: {
      session: {
        intra_op: { allow_spinning: o.spinning ? '1' : '0' },
        ...(o.spinning ? { force_spinning_stop: '1' } : {}),
        ...(o.prepack === false ? { disable_prepacking: '1' } : {}),
      },
    },
  };
}

async function create(source: { path: string } | { bytes: Uint8Array }, o: SessionOptionsSpec): Promise<{ session: ort.InferenceSession; provider: string }> {
  const make = (providers: string[]) => ('path' in source
    ? ort.InferenceSession.create(source.path, sessionOptions(o, providers))
    : ort.InferenceSession.create(source.bytes, sessionOptions(o, providers)));
  try {
    return { session: await make(o.executionProviders), provider: o.executionProviders[0] ?? 'cpu' };
  } catch (e) {
    // ORT does not fall back when a GPU provider's libraries are missing: retry on CPU ourselves.
    if (o.executionProviders.length === 1 && o.executionProviders[0] === 'cpu') throw e;
    return { session: await make(['cpu']), provider: 'cpu' };
  }
}

function post(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  port.postMessage(msg, transfer);
}

async function handle(msg: ToWorker): Promise<void> {
  try {
    switch (msg.type) {
      case 'crash':
        process.exit(70);
      // eslint-disable-next-line no-fallthrough
      case 'load': {
        const t = performance.now();
        await sessions.get(msg.key)?.release();
        const { session, provider } = await create(msg.source, msg.options);
        sessions.set(msg.key, session);
        post({ type: 'loaded', id: msg.id, key: msg.key, inputNames: [...session.inputNames], outputNames: [...session.outputNames], ms: performance.now() - t, provider });
        break;
      }
      case 'unload': {
        await sessions.get(msg.key)?.release();
        sessions.delete(msg.key);
        post({ type: 'unloaded', id: msg.id });
        break;
      }
      case 'run': {
        const session = sessions.get(msg.key);
        if (!session) throw new Error(`session '${msg.key}' is not loaded`);
        const feeds: Record<string, ort.Tensor> = {};
        for (const [name, t] of Object.entries(msg.feeds)) feeds[name] = new ort.Tensor('float32', t.data, t.dims);
        const t0 = performance.now();
        const out = msg.fetches ? await session.run(feeds, msg.fetches) : await session.run(feeds);
        const ms = performance.now() - t0;
        const outputs: Record<string, WireTensor> = {};
        const transfer = new Set<ArrayBuffer>();
        for (const [name, t] of Object.entries(out)) {
          const data = t.data as Float32Array;
          outputs[name] = { dims: [...t.dims], data };
          if (data.byteOffset === 0 && data.byteLength === data.buffer.byteLength) transfer.add(data.buffer as ArrayBuffer);
        }
        // The inputs go back too (moved, not copied): fresh memory costs a page fault per 4 KiB on first write, so
        // the classifier refills these already-touched buffers for its next images instead of allocating new ones.
        for (const t of Object.values(msg.feeds)) if (t.data.buffer instanceof ArrayBuffer) transfer.add(t.data.buffer);
        post({ type: 'result', id: msg.id, outputs, ms, inputs: msg.feeds }, [...transfer]);
        break;
      }
    }
  } catch (e) {
    post({ type: 'error', id: msg.id, message: e instanceof Error ? e.message : String(e) });
  }
}

// One message at a time, in arrival order: an 'unload' (idle release) followed by a 'load' of the same key
// must not interleave at their awaits, or the unload would delete the freshly created session.
let chain = Promise.resolve();
port.on('message', (msg: ToWorker) => {
  chain = chain.then(() => handle(msg));
});

post({ type: 'ready' });
