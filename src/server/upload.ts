// Image upload: multipart fields (multer, memory storage) or a raw `image/*` body. Produces the list of
// uploaded images with their field names; every way an upload can be wrong becomes a precise 4xx.
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import multer from 'multer';
import type { Config } from '../config.js';
import { badRequest, tooLarge, unsupportedMedia } from '../util/problem.js';

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

export interface UploadOptions {
  /** Accepted multipart file fields; a raw body counts as the first one. */
  fields: string[];
  /** At least one image required (default true). */
  required?: boolean;
}

export function imageUpload(config: Config, opts: UploadOptions): RequestHandler {
  const limits = { fileSize: config.maxUploadBytes, files: config.maxFilesPerRequest, fields: 100, fieldSize: 1024 * 1024 };
  const multipart = multer({ storage: multer.memoryStorage(), limits }).fields(opts.fields.map((name) => ({ name, maxCount: config.maxFilesPerRequest })));
  const raw = express.raw({ type: 'image/*', limit: config.maxUploadBytes });
  const required = opts.required ?? true;

  return (req: Request, res: Response, next: NextFunction) => {
    const type = (req.headers['content-type'] ?? '').toLowerCase();
    const done = (err?: unknown) => {
      if (err) return next(translateUploadError(err, config, opts.fields));
      if (required && (!req.images || req.images.length === 0)) {
        return next(badRequest('missing-image', `No image uploaded. Send multipart/form-data with a file field ${opts.fields.map((f) => `'${f}'`).join(' or ')}, or a raw body with an image/* Content-Type.`));
      }
      next();
    };
    if (type.startsWith('multipart/form-data')) {
      multipart(req, res, (err?: unknown) => {
        if (!err) {
          const files = (req.files ?? {}) as Record<string, Express.Multer.File[]>;
          req.images = opts.fields.flatMap((f) => (files[f] ?? []).map((file) => ({ field: f, bytes: file.buffer, mimetype: file.mimetype, filename: file.originalname })));
        }
        done(err);
      });
    } else if (type.startsWith('image/')) {
      raw(req, res, (err?: unknown) => {
        if (!err) {
          const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
          req.images = [{ field: opts.fields[0]!, bytes: body, mimetype: type.split(';')[0]! }];
          if (body.length === 0) return next(badRequest('empty-image', 'The uploaded image is empty (0 bytes).'));
        }
        done(err);
      });
    } else if (!type && (req.headers['content-length'] === undefined || req.headers['content-length'] === '0') && !req.headers['transfer-encoding']) {
      done();
    } else {
      next(unsupportedMedia('unsupported-content-type', `Content-Type '${type || '(none)'}' is not accepted: send multipart/form-data with a file field '${opts.fields[0]}', or a raw body with an image/* Content-Type.`));
    }
  };
}

function translateUploadError(err: unknown, config: Config, fields: string[]) {
  if (err instanceof multer.MulterError) {
    switch (err.code) {
      case 'LIMIT_FILE_SIZE':
        return tooLarge('upload-too-large', `An uploaded file is larger than ${config.maxUploadBytes} bytes (CONVSERVE_MAX_UPLOAD_BYTES).`, { limit: config.maxUploadBytes });
      case 'LIMIT_FILE_COUNT':
        return tooLarge('too-many-files', `At most ${config.maxFilesPerRequest} files per request (CONVSERVE_MAX_FILES).`, { limit: config.maxFilesPerRequest });
      case 'LIMIT_UNEXPECTED_FILE':
        return badRequest('unexpected-field', `Unexpected file field '${err.field}'. Accepted file fields: ${fields.join(', ')}.`);
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
