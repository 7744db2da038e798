/**
 * The launcher protocol: what the driver and the Python launcher (spark-jobs/tfos_launcher.py)
 * say to each other over plain HTTP under /v1/launcher/ (docs/protocol.md).
 *
 * The field lists live in one file both sides load, spark-jobs/protocol.json: the launcher checks
 * the job and every command against it, the driver checks every event. The types below are tied to
 * that file at compile time (the checks at the end), so neither side can drift from it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { JobName } from './control';

/** spark-jobs/protocol.json, seen from dist/lib/protocol/ (the package ships both). */
export const PROTOCOL_SCHEMA_PATH = path.resolve(__dirname, '../../../spark-jobs/protocol.json');

/** What the launcher fetches from GET /v1/launcher/job: everything it needs to start the nodes. */
export interface JobSpec {
  protocol: number;
  clusterId: string;
  appName: string;
  clusterSize: number;
  /** Role of each node index; index i is the i-th task of the barrier stage. */
  roles: Array<{ job: JobName; taskIndex: number }>;
  /** argv of the trainer process (node + the trainer entry script). */
  trainerCommand: string[];
  /** Extra environment for trainers (user's env plus ours). */
  trainerEnv: Record<string, string>;
  /** Trainers on ps nodes get no GPU even when the job asks for GPUs. */
  gpusPerNode: number;
  /** Seconds the node stage may take to start all trainers before the driver gives up. */
  reservationTimeoutSec: number;
  /** Extra task slots to hold free for InputMode.SPARK feeding tasks (one per worker). */
  feedSlots?: number;
  /** InputMode.SPARK with the run's data: what the launcher opens ahead, while the nodes start, so the first feed finds Spark warm. */
  feedData?: { path: string; format?: string };
  /**
   * Seconds the launcher waits for a driver that accepts its polls and does not answer (alive, its
   * event loop busy) before it stops the cluster (default 180; an unreachable driver: 20 s).
   */
  driverSilenceSec?: number;
}

/** One InputMode.SPARK feed: Spark reads the data and streams each worker its share. */
export interface FeedSpec {
  feedId: string;
  kind: 'train' | 'infer';
  /** A dataset path Spark reads, or (Livy session) the name of a DataFrame defined there. */
  path?: string;
  dataFrame?: string;
  /** [host, dataPort] of each worker, in worker order: Spark partition i feeds targets[i]. */
  targets: Array<[string, number]>;
  epochs: number;
  /** Spark data source format (default parquet). */
  format?: string;
  columns?: string[];
  stallTimeoutSec?: number;
  /** Inference: where Spark writes the results (replacing them only with `overwrite`), their key column and DDL. */
  output?: string;
  overwrite?: boolean;
  keyColumn?: string;
  resultSchema?: string;
}

/** Driver → launcher: the answer to GET /v1/launcher/command (long poll). */
export type LauncherCommand =
  /** Cancel the node stage, stop Spark, report `stopped`. */
  | { type: 'shutdown'; reason: string }
  /** Start a feed beside the node stage. */
  | { type: 'feed'; feed: FeedSpec };

export interface FeedEpochWorker {
  worker: number;
  rows: number;
  taken: number;
  terminated: boolean;
}

/** Launcher → driver: POST /v1/launcher/event. */
export type LauncherEvent =
  | { type: 'spark-started'; appId: string; master: string; uiUrl?: string | null; defaultFS?: string | null }
  | { type: 'nodes-finished'; results: Array<{ nodeIndex: number; exitCode: number }> }
  | { type: 'failed'; error: string }
  | { type: 'feed-epoch'; feedId: string; epoch: number; workers: FeedEpochWorker[] }
  | { type: 'feed-done'; feedId: string }
  | { type: 'feed-failed'; feedId: string; error: string }
  | { type: 'stopped' }
  /** A start-up or feed-start phase the launcher reached now (or `agoMs` earlier): see lib/driver/phases.ts. */
  | { type: 'phase'; phase: LauncherPhase; feedId?: string | null; agoMs?: number | null };

/** Phases only the launcher sees: its control channel up, every task slot granted, a feed's DataFrame opened and stage submitted. */
export type LauncherPhase = 'launcher-started' | 'executors-granted' | 'feed-opened' | 'feed-stage';

/** spark-jobs/protocol.json as loaded. */
export interface ProtocolSchema {
  version: number;
  job: Record<string, string>;
  commands: Record<string, Record<string, string>>;
  feed: Record<string, string>;
  events: Record<string, Record<string, string>>;
}

let cached: ProtocolSchema | undefined;

export function protocolSchema(): ProtocolSchema {
  cached ??= JSON.parse(fs.readFileSync(PROTOCOL_SCHEMA_PATH, 'utf8')) as ProtocolSchema;
  return cached;
}

/** A message that does not match spark-jobs/protocol.json; names the message and the field. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

function typeOk(value: unknown, type: string): boolean {
  switch (type) {
    case 'string':
      return typeof value === 'string';
    case 'int':
      return Number.isInteger(value);
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'bool':
      return typeof value === 'boolean';
    case 'array':
      return Array.isArray(value);
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
    default:
      throw new ProtocolError(`spark-jobs/protocol.json: unknown field type '${type}'`);
  }
}

/** Checks an object's fields against one field list: required present, types right, nothing unknown. */
export function checkFields(what: string, msg: Record<string, unknown>, fields: Record<string, string>, ignore: string[] = []): void {
  for (const [name, spec] of Object.entries(fields)) {
    const optional = spec.endsWith('?');
    const value = msg[name];
    if (value === undefined || value === null) {
      if (!optional) throw new ProtocolError(`${what}: missing field '${name}'`);
      continue;
    }
    const type = optional ? spec.slice(0, -1) : spec;
    if (!typeOk(value, type))
      throw new ProtocolError(`${what}: field '${name}' must be ${type}, got ${JSON.stringify(value)?.slice(0, 80)}`);
  }
  for (const name of Object.keys(msg)) {
    if (!(name in fields) && !ignore.includes(name)) throw new ProtocolError(`${what}: unknown field '${name}'`);
  }
}

/** Validates a launcher event (what POST /v1/launcher/event carries); throws ProtocolError. */
export function parseLauncherEvent(body: unknown, schema: ProtocolSchema = protocolSchema()): LauncherEvent {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ProtocolError('launcher event: not a JSON object');
  const msg = body as Record<string, unknown>;
  const fields = typeof msg.type === 'string' && Object.hasOwn(schema.events, msg.type) ? schema.events[msg.type] : undefined;
  if (!fields)
    throw new ProtocolError(`launcher event: unknown type ${JSON.stringify(msg.type)} (known: ${Object.keys(schema.events).join(', ')})`);
  checkFields(`launcher event '${String(msg.type)}'`, msg, fields, ['type']);
  return msg as unknown as LauncherEvent;
}

// ---- compile-time ties to spark-jobs/protocol.json (a type-only import: nothing is loaded) ----
type Schema = typeof import('../../spark-jobs/protocol.json');
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Fields<U extends { type: string }, T extends string> = Exclude<keyof Extract<U, { type: T }>, 'type'>;
type EachMatches<U extends { type: string }, S> = {
  [T in U['type']]: T extends keyof S ? Same<Fields<U, T>, keyof S[T]> : false;
}[U['type']];
type AllTrue<T extends boolean[]> = false extends T[number] ? false : true;

// A compile error here ("Type 'true' is not assignable to type 'false'") means a type below and
// spark-jobs/protocol.json list different messages or fields: change both.
const schemaMatchesTypes: AllTrue<
  [
    Same<keyof JobSpec, keyof Schema['job']>,
    Same<keyof FeedSpec, keyof Schema['feed']>,
    Same<LauncherCommand['type'], keyof Schema['commands']>,
    Same<LauncherEvent['type'], keyof Schema['events']>,
    EachMatches<LauncherCommand, Schema['commands']>,
    EachMatches<LauncherEvent, Schema['events']>,
  ]
> = true;
void schemaMatchesTypes;
