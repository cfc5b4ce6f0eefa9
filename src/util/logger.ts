// Structured logs (pino, JSON lines on stdout). LOG_LEVEL controls verbosity; 'silent' in tests by default.
import { pino, type Logger } from 'pino';

const defaultLevel = process.env.NODE_TEST_CONTEXT ? 'silent' : 'info';

export const logger: Logger = pino({
  level: process.env.LOG_LEVEL ?? defaultLevel,
  base: { service: 'convserve', pid: process.pid },
  timestamp: pino.stdTimeFunctions.isoTime,
});

export type { Logger };
