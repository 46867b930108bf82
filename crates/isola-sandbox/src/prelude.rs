//! The prelude (`prelude.js`), compiled once per process and loaded as bytecode into each fresh
//! context: parsing its source every time cost more than the rest of an execution together.
//!
//! This is the only bytecode a sandbox ever loads, and it is ours: produced by this same QuickJS
//! build from a source compiled into the binary. Scripts cannot load bytecode.

use std::ffi::CString;
use std::sync::OnceLock;

use rquickjs::{Context, Ctx, Function, Runtime, Value, qjs};

use crate::{Intrinsics, PRELUDE_NAME};

const SOURCE: &str = include_str!("prelude.js");

static BYTECODE: OnceLock<Option<Vec<u8>>> = OnceLock::new();

/// The prelude's entry function in `ctx`.
pub fn load<'js>(ctx: &Ctx<'js>) -> rquickjs::Result<Function<'js>> {
    match BYTECODE.get_or_init(compile) {
        // SAFETY: the bytes were written by JS_WriteObject of this QuickJS build, in this process.
        Some(bytes) => unsafe { eval_bytecode(ctx, bytes) },
        None => {
            // Compiling to bytecode failed (it never should): evaluate the source instead.
            let mut options = rquickjs::context::EvalOptions::default();
            options.global = true;
            options.strict = true;
            options.filename = Some(PRELUDE_NAME.to_string());
            ctx.eval_with_options(SOURCE, options)
        }
    }
}

fn compile() -> Option<Vec<u8>> {
    let runtime = Runtime::new().ok()?;
    let context = Context::custom::<Intrinsics>(&runtime).ok()?;
    context.with(|ctx| {
        let raw = ctx.as_raw().as_ptr();
        let source = CString::new(SOURCE).ok()?;
        let name = CString::new(PRELUDE_NAME).ok()?;
        let flags = (qjs::JS_EVAL_TYPE_GLOBAL
            | qjs::JS_EVAL_FLAG_STRICT
            | qjs::JS_EVAL_FLAG_COMPILE_ONLY) as i32;
        // SAFETY: valid context, NUL-terminated source and name, the length excludes the NUL;
        // every value and buffer obtained is freed before returning.
        unsafe {
            let func = qjs::JS_Eval(
                raw,
                source.as_ptr(),
                SOURCE.len() as _,
                name.as_ptr(),
                flags,
            );
            if qjs::JS_IsException(func) {
                let _ = ctx.catch();
                return None;
            }
            let mut size: qjs::size_t = 0;
            let buf = qjs::JS_WriteObject(raw, &mut size, func, qjs::JS_WRITE_OBJ_BYTECODE as i32);
            qjs::JS_FreeValue(raw, func);
            if buf.is_null() {
                let _ = ctx.catch();
                return None;
            }
            let bytes = std::slice::from_raw_parts(buf, size as usize).to_vec();
            qjs::js_free(raw, buf.cast());
            Some(bytes)
        }
    })
}

/// # Safety
/// `bytes` must be bytecode written by this QuickJS build.
unsafe fn eval_bytecode<'js>(ctx: &Ctx<'js>, bytes: &[u8]) -> rquickjs::Result<Function<'js>> {
    let raw = ctx.as_raw().as_ptr();
    // SAFETY: per the contract; JS_EvalFunction takes ownership of the function object.
    let value = unsafe {
        let func = qjs::JS_ReadObject(
            raw,
            bytes.as_ptr(),
            bytes.len() as _,
            qjs::JS_READ_OBJ_BYTECODE as i32,
        );
        if qjs::JS_IsException(func) {
            return Err(rquickjs::Error::Exception);
        }
        let result = qjs::JS_EvalFunction(raw, func);
        if qjs::JS_IsException(result) {
            return Err(rquickjs::Error::Exception);
        }
        Value::from_raw(ctx.clone(), result)
    };
    value.into_function().ok_or(rquickjs::Error::Unknown)
}
