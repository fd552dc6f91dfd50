// Undo and redo over whole snapshots of the graph: graphs are small (tens of nodes), so a copy per change is
// simpler and safer than inverse operations.

export class History<T> {
  private past: T[] = [];
  private future: T[] = [];
  constructor(private readonly limit = 200) {}

  /** Records the state before a change. */
  push(before: T): void {
    this.past.push(before);
    if (this.past.length > this.limit) this.past.shift();
    this.future = [];
  }

  undo(now: T): T | undefined {
    const prev = this.past.pop();
    if (prev !== undefined) this.future.push(now);
    return prev;
  }

  redo(now: T): T | undefined {
    const next = this.future.pop();
    if (next !== undefined) this.past.push(now);
    return next;
  }

  get canUndo(): boolean {
    return this.past.length > 0;
  }

  get canRedo(): boolean {
    return this.future.length > 0;
  }

  clear(): void {
    this.past = [];
    this.future = [];
  }
}
