import { z } from 'zod';

/** The raw environment as loadConfig sees it: blank values already removed. */
export type RawEnv = Readonly<Record<string, string>>;

/**
 * One environment variable: its name, what it means, its default, and how its
 * text becomes a value. The config schema (schema.ts) is a tree of these; the
 * Config type, the defaults, the error messages and .env.example all come
 * from that one tree.
 */
export interface EnvVar<T> {
  readonly kind: 'env-var';
  readonly name: string;
  readonly doc: string;
  /** Never echoed in errors or docs. */
  readonly secret: boolean;
  /**
   * The default as .env.example writes it (`NAME=<example>`); undefined when
   * the variable is unset by default (`# NAME=`), `defaultDoc` then says what
   * unset means.
   */
  readonly example: string | undefined;
  readonly defaultDoc: string | undefined;
  /** The value for a raw text (undefined = unset). Throws EnvVarError with a message for the operator. */
  parse(raw: string | undefined, env: RawEnv): T;
}

export class EnvVarError extends Error {}

type Default<T> = T | ((env: RawEnv) => T);

interface Common {
  doc: string;
  /** Says what the default is when it is computed (e.g. "2 x CPU cores"). */
  defaultDoc?: string;
}

function leaf<T>(name: string, opts: Common & { secret?: boolean; example: string | undefined }, parse: (raw: string | undefined, env: RawEnv) => T): EnvVar<T> {
  return { kind: 'env-var', name, doc: opts.doc, secret: opts.secret ?? false, example: opts.example, defaultDoc: opts.defaultDoc, parse };
}

/** Runs a zod schema over a raw text; the first issue becomes the operator's message. */
function check<T>(schema: z.ZodType<T>, raw: string): T {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  throw new EnvVarError(result.error.issues[0]?.message ?? 'invalid value');
}

function resolveDefault<T>(def: Default<T>, env: RawEnv): T {
  return typeof def === 'function' ? (def as (env: RawEnv) => T)(env) : def;
}

/** A static default is written into .env.example; a computed one is documented instead. */
function exampleOf<T>(def: Default<T> | undefined): string | undefined {
  return def === undefined || typeof def === 'function' ? undefined : String(def);
}

const wholeNumber = (min: number, max: number): z.ZodType<number> =>
  z
    .string()
    .trim()
    .regex(/^-?\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min, `must be >= ${min}`).max(max, `must be <= ${max}`));

export function int(name: string, opts: Common & { default: Default<number>; min: number; max?: number }): EnvVar<number> {
  const schema = wholeNumber(opts.min, opts.max ?? Number.MAX_SAFE_INTEGER);
  return leaf(name, { ...opts, example: exampleOf(opts.default) }, (raw, env) => (raw === undefined ? resolveDefault(opts.default, env) : check(schema, raw)));
}

export function num(name: string, opts: Common & { default: number; min: number; max: number }): EnvVar<number> {
  const schema = z
    .string()
    .trim()
    .regex(/^\d+(\.\d+)?$/, 'must be a number')
    .transform(Number)
    .pipe(z.number().min(opts.min, `must be >= ${opts.min}`).max(opts.max, `must be <= ${opts.max}`));
  return leaf(name, { ...opts, example: String(opts.default) }, (raw) => (raw === undefined ? opts.default : check(schema, raw)));
}

const TRUE = new Set(['true', '1', 'yes']);
const FALSE = new Set(['false', '0', 'no']);

export function bool(name: string, opts: Common & { default: boolean }): EnvVar<boolean> {
  return leaf(name, { ...opts, example: String(opts.default) }, (raw) => {
    if (raw === undefined) return opts.default;
    const v = raw.trim().toLowerCase();
    if (TRUE.has(v)) return true;
    if (FALSE.has(v)) return false;
    throw new EnvVarError('must be true or false');
  });
}

export function oneOf<const V extends readonly [string, ...string[]]>(name: string, values: V, opts: Common & { default: Default<V[number]> }): EnvVar<V[number]> {
  const schema = z.enum(values, { error: `must be one of ${values.join(', ')}` });
  return leaf(name, { ...opts, example: exampleOf(opts.default) }, (raw, env) => (raw === undefined ? resolveDefault(opts.default, env) : check(schema, raw.trim())));
}

interface StringOpts extends Common {
  secret?: boolean;
  /** A regex the value must match, and the message when it does not. */
  pattern?: [RegExp, string];
  minLength?: number;
}

function stringSchema(opts: StringOpts): z.ZodType<string> {
  let s = z.string();
  if (!opts.secret) s = s.trim();
  if (opts.minLength !== undefined) s = s.min(opts.minLength, `must be at least ${opts.minLength} characters`);
  if (opts.pattern) s = s.regex(opts.pattern[0], opts.pattern[1]);
  return s;
}

/** A string with a default. */
export function str(name: string, opts: StringOpts & { default: Default<string> }): EnvVar<string> {
  const schema = stringSchema(opts);
  return leaf(name, { ...opts, example: exampleOf(opts.default) }, (raw, env) => (raw === undefined ? resolveDefault(opts.default, env) : check(schema, raw)));
}

/** A string that may stay unset. */
export function optionalStr(name: string, opts: StringOpts): EnvVar<string | undefined> {
  const schema = stringSchema(opts);
  return leaf(name, { ...opts, example: undefined }, (raw) => (raw === undefined ? undefined : check(schema, raw)));
}

/** An http(s) URL that may stay unset. */
export function optionalUrl(name: string, opts: Common & { protocols?: readonly string[] }): EnvVar<string | undefined> {
  const protocols = opts.protocols ?? ['http:', 'https:'];
  return leaf(name, { ...opts, example: undefined }, (raw) => {
    if (raw === undefined) return undefined;
    let url: URL;
    try {
      url = new URL(raw.trim());
    } catch {
      throw new EnvVarError(`must be a URL (${protocols.map((p) => `${p}//`).join(' or ')})`);
    }
    if (!protocols.includes(url.protocol)) throw new EnvVarError(`must be a ${protocols.map((p) => `${p}//`).join(' or ')} URL`);
    return raw.trim();
  });
}

/** Any value with its own parser (a command line, a list): `parse` throws EnvVarError. */
export function custom<T>(name: string, opts: Common & { default: T; example?: string; parse: (raw: string) => T }): EnvVar<T> {
  return leaf(name, { ...opts, example: opts.example }, (raw) => (raw === undefined ? opts.default : opts.parse(raw)));
}

/** A tree of variables: leaves are EnvVars, inner nodes group them (config.pool, config.chat, ...). */
export interface EnvTree {
  readonly [key: string]: EnvVar<unknown> | EnvTree;
}

/** The value type of a tree: what loadConfig returns. */
export type ValueOf<T> = T extends EnvVar<infer V> ? V : { -readonly [K in keyof T]: ValueOf<T[K]> };

export function isEnvVar(node: EnvVar<unknown> | EnvTree): node is EnvVar<unknown> {
  return (node as EnvVar<unknown>).kind === 'env-var';
}

/** Every variable of a tree, in declaration order, with the path of its group. */
export function variablesOf(tree: EnvTree, path: readonly string[] = []): Array<{ path: readonly string[]; variable: EnvVar<unknown> }> {
  return Object.entries(tree).flatMap(([key, node]) =>
    isEnvVar(node) ? [{ path: [...path, key], variable: node }] : variablesOf(node, [...path, key]),
  );
}
