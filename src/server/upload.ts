// Image upload: multipart fields (multer, memory storage) or a raw `image/*` body. Produces the list of
// uploaded images with their field names; every way an upload can be wrong becomes a precise 4xx.
//
// Memory is bounded three ways: per route (how many files each field takes, CONVSERVE_MAX_UPLOAD_BYTES each, a
// few small form fields), per request (a Content-Length above the route's most is refused before a byte is
// read), and across requests (UploadBudget: the bytes of every upload being held at once; 503 + Retry-After
// when a new one would not fit, again before its body is read).
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import multer from 'multer';
import type { Config } from '../config.js';
import { ProblemError, badRequest, tooLarge, unavailable, unsupportedMedia } from '../util/problem.js';

export interface UploadedImage {
  field: string;
  bytes: Buffer;
  mimetype: string;
  filename?: string;
}

declare module 'express-serve-static-core' {
  interface Request {
    images?: UploadedImage[];
  }
}

/** A multipart file field and the most files it takes. */
export interface UploadField {
  name: string;
  maxCount: number;
  /** Largest file of this field (default CONVSERVE_MAX_UPLOAD_BYTES): a fine-tune's archive has its own limit. */
  maxBytes?: number;
}

export interface UploadOptions {
  /** Accepted multipart file fields; a raw body counts as the first one. */
  fields: UploadField[];
  /** At least one image required (default true). */
  required?: boolean;
}

/** Room for boundaries and part headers around the files and fields of one multipart body. */
const MULTIPART_OVERHEAD_BYTES = 64 * 1024;

/** Bytes of uploads held in memory across all requests, against CONVSERVE_UPLOAD_BUDGET_BYTES. */
export class UploadBudget {
  private used = 0;
  constructor(readonly limit: number) {}

  get inFlight(): number {
    return this.used;
  }

  tryReserve(bytes: number): boolean {
    if (this.used + bytes > this.limit) return false;
    this.used += bytes;
    return true;
  }

  release(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }
}

// One budget per configuration, i.e. per running service (every route of an app shares its config object).
const budgets = new WeakMap<Config, UploadBudget>();

export function uploadBudgetFor(config: Config): UploadBudget {
  let b = budgets.get(config);
  if (!b) {
    b = new UploadBudget(config.uploadBudgetBytes);
    budgets.set(config, b);
  }
  return b;
}

/** The most bytes a multipart request to a route with these fields may carry. */
export function multipartMaxBytes(config: Config, fields: UploadField[]): number {
  const files = fields.reduce((n, f) => n + f.maxCount * fieldMaxBytes(config, f), 0);
  return files + config.maxFormFields * config.maxFormFieldBytes + MULTIPART_OVERHEAD_BYTES;
}

const fieldMaxBytes = (config: Config, f: UploadField) => f.maxBytes ?? config.maxUploadBytes;

/**
 * An AbortSignal that fires when the client goes away before its response is complete, so work it can no
 * longer receive is dropped (queued inference, the remaining stages of a filter).
 */
export function clientGoneSignal(res: Response): AbortSignal {
  const ac = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) ac.abort(new ProblemError(499, 'client-closed', 'Client closed request', 'The client closed the connection before the response was complete.'));
  });
  return ac.signal;
}

export function imageUpload(config: Config, opts: UploadOptions): RequestHandler {
  const totalFiles = opts.fields.reduce((n, f) => n + f.maxCount, 0);
  // multer has one file size limit: the largest field's; a file over its own field's limit is refused after.
  // (A route without file fields — a job kind with no inputs — keeps the default: Math.max() of nothing is −∞.)
  const largest = Math.max(config.maxUploadBytes, ...opts.fields.map((f) => fieldMaxBytes(config, f)));
  const limits = {
    fileSize: largest,
    files: totalFiles,
    fields: config.maxFormFields,
    fieldSize: config.maxFormFieldBytes,
    parts: totalFiles + config.maxFormFields,
    fieldNameSize: 256,
    headerPairs: 20,
  };
  const multipart = multer({ storage: multer.memoryStorage(), limits }).fields(opts.fields.map((f) => ({ name: f.name, maxCount: f.maxCount })));
  const raw = express.raw({ type: 'image/*', limit: config.maxUploadBytes });
  const required = opts.required ?? true;
  const budget = uploadBudgetFor(config);
  const multipartMax = multipartMaxBytes(config, opts.fields);
  const names = opts.fields.map((f) => f.name);

  return (req: Request, res: Response, next: NextFunction) => {
    // Server-Timing: `mw` = the middlewares in front of the route (logging, security, auth, rate limit),
    // `upload` = receiving and parsing the body.
    req.clock?.lap('mw');
    const type = (req.headers['content-type'] ?? '').toLowerCase();
    const done = (err?: unknown) => {
      req.clock?.lap('upload');
      if (err) return next(translateUploadError(err, config, opts.fields));
      if (required && (!req.images || req.images.length === 0)) {
        return next(badRequest('missing-image', `No image uploaded. Send multipart/form-data with a file field ${names.map((f) => `'${f}'`).join(' or ')}, or a raw body with an image/* Content-Type.`));
      }
      next();
    };
    const isMultipart = type.startsWith('multipart/form-data');
    if (!isMultipart && !type.startsWith('image/')) {
      if (!type && (req.headers['content-length'] === undefined || req.headers['content-length'] === '0') && !req.headers['transfer-encoding']) return done();
      return next(unsupportedMedia('unsupported-content-type', `Content-Type '${type || '(none)'}' is not accepted: send multipart/form-data with a file field '${names[0]}', or a raw body with an image/* Content-Type.`));
    }
    const most = isMultipart ? multipartMax : config.maxUploadBytes;
    const reserved = reserveUpload(req, res, budget, most, config);
    if (reserved instanceof ProblemError) return next(reserved);

    if (isMultipart) {
      multipart(req, res, (err?: unknown) => {
        if (!err) {
          const files = (req.files ?? {}) as Record<string, Express.Multer.File[]>;
          req.images = names.flatMap((f) => (files[f] ?? []).map((file) => ({ field: f, bytes: file.buffer, mimetype: file.mimetype, filename: file.originalname })));
          const over = opts.fields.find((f) => (files[f.name] ?? []).some((file) => file.size > fieldMaxBytes(config, f)));
          if (over) return next(fieldTooLarge(config, over));
        }
        done(err);
      });
    } else {
      raw(req, res, (err?: unknown) => {
        if (!err) {
          const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
          req.images = [{ field: names[0]!, bytes: body, mimetype: type.split(';')[0]! }];
          if (body.length === 0) return next(badRequest('empty-image', 'The uploaded image is empty (0 bytes).'));
        }
        done(err);
      });
    }
  };
}

/**
 * Checks the declared size against the route's most and reserves it in the budget until the response is done
 * (a body without Content-Length reserves the route's most). Returns the problem to answer instead, if any.
 */
function reserveUpload(req: Request, res: Response, budget: UploadBudget, most: number, config: Config): ProblemError | number {
  const header = req.headers['content-length'];
  const declared = header !== undefined && /^\d{1,15}$/.test(header) ? Number(header) : undefined;
  if (declared !== undefined && declared > most) {
    return tooLarge('upload-too-large', `The request body declares ${declared} bytes; this route accepts at most ${most} (its files at CONVSERVE_MAX_UPLOAD_BYTES each plus form fields).`, { limit: most });
  }
  const bytes = declared ?? most;
  if (!budget.tryReserve(bytes)) {
    return unavailable('upload-budget-exhausted', `The server is holding ${budget.inFlight} bytes of uploads (CONVSERVE_UPLOAD_BUDGET_BYTES = ${config.uploadBudgetBytes}); this upload of up to ${bytes} bytes does not fit now. Retry shortly.`, { budget_bytes: config.uploadBudgetBytes }, 1);
  }
  res.once('close', () => budget.release(bytes));
  return bytes;
}

function translateUploadError(err: unknown, config: Config, fields: UploadField[]) {
  if (err instanceof multer.MulterError) {
    switch (err.code) {
      case 'LIMIT_FILE_SIZE': {
        const field = fields.find((f) => f.name === err.field);
        if (field?.maxBytes !== undefined) return fieldTooLarge(config, field);
        return tooLarge('upload-too-large', `An uploaded file is larger than ${config.maxUploadBytes} bytes (CONVSERVE_MAX_UPLOAD_BYTES).`, { limit: config.maxUploadBytes });
      }
      case 'LIMIT_FILE_COUNT':
      case 'LIMIT_PART_COUNT':
        return tooLarge('too-many-files', `Too many parts: this route takes at most ${fields.map((f) => `${f.maxCount} file(s) in '${f.name}'`).join(', ')} and ${config.maxFormFields} form fields.`, { limit: fields.reduce((n, f) => n + f.maxCount, 0) });
      case 'LIMIT_FIELD_COUNT':
        return tooLarge('too-many-fields', `At most ${config.maxFormFields} form fields per request (CONVSERVE_MAX_FIELDS).`, { limit: config.maxFormFields });
      case 'LIMIT_FIELD_VALUE':
        return tooLarge('field-too-large', `The form field '${err.field ?? '?'}' is longer than ${config.maxFormFieldBytes} bytes (CONVSERVE_MAX_FIELD_BYTES).`, { limit: config.maxFormFieldBytes });
      case 'LIMIT_UNEXPECTED_FILE': {
        const known = fields.find((f) => f.name === err.field);
        if (known) return tooLarge('too-many-files', `The file field '${known.name}' takes at most ${known.maxCount} file(s).`, { field: known.name, limit: known.maxCount });
        return badRequest('unexpected-field', `Unexpected file field '${String(err.field)}'. Accepted file fields: ${fields.map((f) => f.name).join(', ')}.`);
      }
      default:
        return badRequest('invalid-upload', `Invalid multipart upload: ${err.message}.`);
    }
  }
  const e = err as { type?: string; status?: number; message?: string };
  if (e?.type === 'entity.too.large') {
    return tooLarge('upload-too-large', `The request body is larger than ${config.maxUploadBytes} bytes (CONVSERVE_MAX_UPLOAD_BYTES).`, { limit: config.maxUploadBytes });
  }
  if (e?.status && e.status >= 400 && e.status < 500) return badRequest('invalid-upload', `Invalid upload: ${e.message ?? 'unreadable body'}.`);
  // busboy's parse errors (truncated multipart, bad boundary) are the client's too.
  if (err instanceof Error) return badRequest('invalid-upload', `Invalid multipart upload: ${err.message}.`);
  return err;
}

function fieldTooLarge(config: Config, f: UploadField) {
  const limit = fieldMaxBytes(config, f);
  return tooLarge('upload-too-large', `The file in the field '${f.name}' is larger than ${limit} bytes${f.maxBytes === undefined ? ' (CONVSERVE_MAX_UPLOAD_BYTES)' : ''}.`, { field: f.name, limit });
}
