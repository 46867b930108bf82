// The sandbox prelude: evaluated once per execution, before the user's script, in the fresh
// context. It receives the native functions as arguments and never puts them on the global
// object, so a script can only reach the host through the wrappers below. Every limit is
// enforced on the native side; this file only shapes values.
//
// Time and randomness are the host's (see the crate docs): `now` is the clock the host gave
// with the request and with each input; Math.random is seeded from the host's seed.
(function (natives, namespaces, start) {
  "use strict";
  const { call, log, timer, clearTimer, finish, fail, settling } = natives;
  const g = globalThis;
  const stringify = JSON.stringify;
  const parse = JSON.parse;
  const apply = Reflect.apply;
  const { isWellFormed, replace } = String.prototype;
  // Text for the host: a lone surrogate (half of an emoji, '😀'.slice(0, 1)) is not text the
  // host can hold; it is written as its escape instead.
  const lone = /\p{Surrogate}/gu;
  const escapeLone = (c) => "\\u" + c.charCodeAt(0).toString(16);
  function wellFormed(s) {
    try {
      return apply(isWellFormed, s, []) ? s : apply(replace, s, [lone, escapeLone]);
    } catch (_) {
      return "[text with lone surrogates that cannot be shown]";
    }
  }
  const pending = new Map(); // call id -> [resolve, reject, site Error]
  const timers = new Map(); // timer id -> [callback, args]
  // Errors this prelude made for failed calls, with the kind the host gave them: an uncaught
  // one ends the run with that kind, whatever the script did to its name or message.
  const hostErrors = new WeakMap();
  let nextTimer = 1;
  let nextBinding = 0;
  let now = start.clock;

  // Math.random: xoshiro128** over the host's seed.
  let [s0, s1, s2, s3] = start.seed;
  const rotl = (x, k) => (x << k) | (x >>> (32 - k));
  Math.random = function random() {
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotl(s3, 11);
    return result / 4294967296;
  };

  // Date: the host's clock. `Date.now()`, `new Date()` and `Date()` read it; everything else is
  // the real Date.
  const RealDate = Date;
  const HostDate = new Proxy(RealDate, {
    construct(target, args, newTarget) {
      return Reflect.construct(target, args.length === 0 ? [now] : args, newTarget);
    },
    apply() {
      return new RealDate(now).toString();
    },
  });
  RealDate.now = function now_() {
    return now;
  };
  Object.defineProperty(RealDate.now, "name", { value: "now" });
  RealDate.prototype.constructor = HostDate;
  g.Date = HostDate;

  function typeName(v) {
    if (v === null) return "null";
    if (Array.isArray(v)) return "an array";
    return typeof v;
  }

  // JSON.stringify replacer: values JSON cannot hold become something readable.
  function replacer(_key, v) {
    if (typeof v === "bigint") return v.toString();
    if (v instanceof Map) return Object.fromEntries(v);
    if (v instanceof Set) return Array.from(v);
    if (v instanceof Error) return { name: v.name, message: v.message };
    return v;
  }

  // Plan mode: a planned call (not sent) resolves to a placeholder for its result, known after
  // apply. Reading a property of one gives a placeholder for that part; in a later call's
  // arguments (or the result) one is written as {"$isola.ref": "#1.id"}, inside a string as
  // ⟦#1.id⟧: the plan shows these as references, and the apply resolves them to the results.
  const refs = new WeakMap(); // placeholder -> its path
  const identifier = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
  const index = /^(0|[1-9][0-9]*)$/;
  function placeholder(path) {
    const child = (key) =>
      typeof key === "symbol"
        ? path + "[" + String(key) + "]"
        : index.test(key)
          ? path + "[" + key + "]"
          : identifier.test(key)
            ? path + "." + key
            : path + "[" + stringify(key) + "]";
    const frozen = (_target, key) => {
      const what = key === undefined ? path : child(key);
      throw new TypeError(what + " cannot be changed: " + path + " is known only after apply");
    };
    const p = new Proxy(Object.create(null), {
      get(_target, key) {
        if (key === "toJSON") return () => ({ "$isola.ref": path });
        if (key === Symbol.toPrimitive) {
          return (hint) => (hint === "number" ? NaN : "\u27e6" + path + "\u27e7");
        }
        // Not a thenable (awaiting one gives it back), not iterable.
        if (typeof key === "symbol" || key === "then") return undefined;
        return placeholder(child(key));
      },
      set: frozen,
      defineProperty: frozen,
      deleteProperty: frozen,
      setPrototypeOf: (_target) => frozen(_target),
    });
    refs.set(p, path);
    return p;
  }

  function render(v) {
    if (typeof v === "object" && v !== null && refs.has(v)) {
      return "(known after apply: " + refs.get(v) + ")";
    }
    switch (typeof v) {
      case "string":
        return v;
      case "undefined":
        return "undefined";
      case "function":
        return "[Function " + (v.name || "anonymous") + "]";
      case "bigint":
        return v + "n";
      case "symbol":
        return v.toString();
      case "object":
        if (v instanceof Error) {
          const stack = typeof v.stack === "string" && v.stack ? "\n" + v.stack.trimEnd() : "";
          return v.name + ": " + v.message + stack;
        }
        try {
          const seen = new WeakSet();
          return stringify(v, function (k, x) {
            x = replacer(k, x);
            if (typeof x === "object" && x !== null) {
              if (seen.has(x)) return "[Circular]";
              seen.add(x);
            }
            return x;
          });
        } catch (e) {
          return String(v);
        }
      default:
        return String(v);
    }
  }

  // The run ends with `e`: no call may start from here (rendering it may run script code).
  function report(e) {
    settling();
    let name = "Error";
    let message = "";
    let stack = "";
    let tool = "";
    let kind = "";
    try {
      if (e instanceof Error) {
        name = String(e.name);
        message = String(e.message);
        stack = typeof e.stack === "string" ? e.stack : "";
        kind = hostErrors.get(e) || "";
        tool = kind && typeof e.tool === "string" ? e.tool : "";
      } else {
        message = "uncaught value: " + render(e);
      }
    } catch (_) {
      message = "uncaught value that cannot be rendered";
    }
    fail(wellFormed(name), wellFormed(message), wellFormed(stack), wellFormed(tool), kind);
  }

  // The error a failed call rejects with: [name, message, tool, kind] from the host.
  function callError(e, failure) {
    e.name = failure[0];
    e.message = failure[1];
    e.tool = failure[2];
    hostErrors.set(e, failure[3]);
    return e;
  }

  // True when every value is a JSON primitive or a plain object/array of them (checked to a
  // small depth; deeper values take the replacer path).
  function plain(v, depth = 0) {
    if (depth > 4) return false;
    for (const k in v) {
      const x = v[k];
      const t = typeof x;
      if (t === "bigint") return false;
      if (t === "object" && x !== null) {
        if (x instanceof Map || x instanceof Set || !plain(x, depth + 1)) return false;
      }
    }
    return true;
  }

  function invoke(binding, fname, input) {
    if (input !== undefined && (input === null || typeof input !== "object" || Array.isArray(input))) {
      return Promise.reject(
        new TypeError(fname + " takes one object argument (or none), got " + typeName(input)),
      );
    }
    let json;
    try {
      // Plain objects (the common case) serialise fastest without a replacer; Map, Set and
      // BigInt values need it.
      json = input === undefined ? "{}" : plain(input) ? stringify(input) : stringify(input, replacer);
    } catch (e) {
      return Promise.reject(new TypeError(fname + ": the argument is not JSON-serialisable: " + e.message));
    }
    const r = call(binding, json);
    if (typeof r === "number") {
      const site = new Error("");
      return new Promise((resolve, reject) => pending.set(r, [resolve, reject, site]));
    }
    if (typeof r === "string") return Promise.resolve(parse(r));
    if (!Array.isArray(r)) return Promise.resolve(placeholder("#" + r.planned));
    return Promise.reject(callError(new Error(""), r));
  }

  // A function with positional parameters (`state.set(key, value)`) also takes its arguments
  // in order; one object (or nothing) is the input as for every other function.
  function inOrder(binding, fname, params) {
    return function (...args) {
      const first = args[0];
      if (args.length <= 1 && (first === undefined || (typeof first === "object" && first !== null && !Array.isArray(first)))) {
        return invoke(binding, fname, first);
      }
      if (args.length > params.length) {
        return Promise.reject(
          new TypeError(fname + " takes (" + params.join(", ") + ") or one object, got " + args.length + " arguments"),
        );
      }
      const input = {};
      for (let i = 0; i < args.length; i++) if (args[i] !== undefined) input[params[i]] = args[i];
      return invoke(binding, fname, input);
    };
  }

  for (const [ns, fns, positional] of namespaces) {
    const obj = {};
    for (let j = 0; j < fns.length; j++) {
      const f = fns[j];
      const binding = nextBinding++;
      const fname = ns + "." + f;
      const params = positional[j];
      const fn = params.length > 0 ? inOrder(binding, fname, params) : function (input) {
        return invoke(binding, fname, input);
      };
      Object.defineProperty(fn, "name", { value: fname });
      obj[f] = fn;
    }
    Object.freeze(obj);
    Object.defineProperty(g, ns, { value: obj, writable: false, enumerable: false, configurable: false });
  }

  const consoleFn = (level) =>
    function (...args) {
      log(level, wellFormed(args.map(render).join(" ")));
    };
  g.console = Object.freeze({
    log: consoleFn("log"),
    info: consoleFn("info"),
    warn: consoleFn("warn"),
    error: consoleFn("error"),
    debug: consoleFn("debug"),
  });

  g.setTimeout = function setTimeout(callback, ms, ...args) {
    if (typeof callback !== "function") {
      throw new TypeError("setTimeout: the callback must be a function (strings are not evaluated)");
    }
    const id = nextTimer++;
    timer(id, Math.max(0, Number(ms) || 0)); // throws when too many are pending
    timers.set(id, [callback, args]);
    return id;
  };
  g.clearTimeout = function clearTimeout(id) {
    if (timers.delete(id)) clearTimer(id);
  };

  return {
    start(value) {
      Promise.resolve(value).then((v) => {
        settling();
        let json;
        try {
          json = v === undefined ? undefined : stringify(v, replacer);
        } catch (e) {
          report(new TypeError("the result cannot be converted to JSON: " + e.message));
          return;
        }
        finish(json === undefined ? null : json);
      }, report);
    },
    settle(id, ok, payload, clock) {
      now = clock;
      const p = pending.get(id);
      if (p === undefined) return;
      pending.delete(id);
      if (ok === 2) {
        p[0](placeholder("#" + payload));
      } else if (ok) {
        p[0](parse(payload));
      } else {
        p[1](callError(p[2], payload));
      }
    },
    fire(id, clock) {
      now = clock;
      const t = timers.get(id);
      if (t === undefined) return;
      timers.delete(id);
      try {
        t[0](...t[1]);
      } catch (e) {
        report(e);
      }
    },
    report,
  };
})
