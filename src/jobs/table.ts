// The jobs this process knows (every stored, unexpired job), by id: the in-memory index the queries, the
// scheduler and the sweeper share. The records themselves are persisted by JobStore.
import type { Config } from '../config.js';
import { notFound } from '../util/problem.js';
import { JOB_ID_RE, type JobRecord } from './record.js';

export class JobTable {
  private readonly byId = new Map<string, JobRecord>();

  constructor(private readonly config: Config) {}

  /** The job `id`, or a 404 problem. */
  get(id: string): JobRecord {
    const rec = this.find(id);
    if (!rec) throw notFound('no-such-job', `No job '${id}' (unknown, or expired after ${this.config.jobTtlHours} h).`);
    return rec;
  }

  find(id: string): JobRecord | undefined {
    return JOB_ID_RE.test(id) ? this.byId.get(id) : undefined;
  }

  add(rec: JobRecord): void {
    this.byId.set(rec.id, rec);
  }

  delete(id: string): void {
    this.byId.delete(id);
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  all(): JobRecord[] {
    return [...this.byId.values()];
  }
}
