// redlock 5's package.json "exports" hide its own typings from NodeNext resolution;
// this declares the part of its API the engine uses (checked against dist/index.d.ts).
declare module 'redlock' {
  import { EventEmitter } from 'node:events';
  export interface Lock { release(): Promise<unknown> }
  export interface Settings { retryCount: number; retryDelay: number; retryJitter: number; driftFactor: number }
  export default class Redlock extends EventEmitter {
    constructor(clients: Iterable<unknown>, settings?: Partial<Settings>);
    acquire(resources: string[], duration: number, settings?: Partial<Settings>): Promise<Lock>;
  }
}
