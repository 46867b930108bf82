// What the sandbox provides besides the API and the ECMAScript library (Isola's prelude).

/** Lines written here are the execution's console output (kept up to the log limit). */
declare const console: {
  log(...data: unknown[]): void;
  info(...data: unknown[]): void;
  warn(...data: unknown[]): void;
  error(...data: unknown[]): void;
  debug(...data: unknown[]): void;
};
/** Runs `callback` after `ms` milliseconds of the execution's clock (counted against its deadline). */
declare function setTimeout<A extends unknown[]>(callback: (...args: A) => void, ms?: number, ...args: A): number;
declare function clearTimeout(id: number | undefined): void;
