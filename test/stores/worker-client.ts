import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { WorkerReply, WorkerRequest } from './worker.js';

/** A worker request without its `id` (the client numbers them). */
export type Request = WorkerRequest extends infer R
  ? R extends { id: number }
    ? Omit<R, 'id'>
    : never
  : never;

/** A `worker.ts` process driven over IPC: one message in, one reply out. */
export class Worker {
  readonly #child: ChildProcess;
  readonly #waiting = new Map<number, (reply: WorkerReply) => void>();
  #next = 0;

  constructor() {
    this.#child = fork(fileURLToPath(new URL('./worker.ts', import.meta.url)), [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.#child.on('message', (reply: WorkerReply) => {
      this.#waiting.get(reply.id)?.(reply);
      this.#waiting.delete(reply.id);
    });
  }

  async send(request: Request): Promise<WorkerReply> {
    const id = this.#next++;
    const reply = await new Promise<WorkerReply>((resolve) => {
      this.#waiting.set(id, resolve);
      this.#child.send({ ...request, id });
    });
    if (reply.error) throw new Error(`worker: ${reply.error}`);
    return reply;
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.#child.once('exit', resolve));
    await this.send({ type: 'close' }).catch(() => {});
    await exited;
  }
}
