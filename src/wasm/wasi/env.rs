//! args_get, args_sizes_get, environ_get, environ_sizes_get.

use wasmi::{Caller, Linker};

use super::{sizes, write_strings, M};
use crate::wasm::host::Host;
use crate::wasm::mem;

pub(super) fn add_to_linker(linker: &mut Linker<Host>) -> Result<(), wasmi::Error> {
    linker.func_wrap(
        M,
        "args_get",
        |mut c: Caller<'_, Host>, argv: i32, buf: i32| -> i32 {
            let (m, h) = mem::split(&mut c);
            write_strings(m, &h.wasi.args, argv, buf)
        },
    )?;
    linker.func_wrap(
        M,
        "args_sizes_get",
        |mut c: Caller<'_, Host>, n: i32, size: i32| -> i32 {
            let (m, h) = mem::split(&mut c);
            sizes(m, &h.wasi.args, n, size)
        },
    )?;
    linker.func_wrap(
        M,
        "environ_get",
        |mut c: Caller<'_, Host>, env: i32, buf: i32| -> i32 {
            let (m, h) = mem::split(&mut c);
            write_strings(m, &h.wasi.env, env, buf)
        },
    )?;
    linker.func_wrap(
        M,
        "environ_sizes_get",
        |mut c: Caller<'_, Host>, n: i32, size: i32| -> i32 {
            let (m, h) = mem::split(&mut c);
            sizes(m, &h.wasi.env, n, size)
        },
    )?;
    Ok(())
}
