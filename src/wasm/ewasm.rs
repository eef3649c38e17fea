//! The seed article's `env` ABI (eunomia's ewasm): the guest hands a whole package.json to
//! `create_bpf`, starts it with `run_bpf` and blocks in `wait_and_poll_bpf`, which calls the
//! guest's `process_event(ctx, json, len)` per event (a negative return drops the event).
//! Entry is the exported `bpf_main(env_json, len)`, env being a JSON array of the arguments.
//!
//! Guest buffers (the argument JSON, each event) are allocated with the guest's exported
//! `malloc`, as WAMR's module_malloc did for ewasm.

use std::ops::ControlFlow;
use std::time::Duration;

use wasmi::{Caller, Error as Trap, Instance, Linker, Store, Val};

use super::host::{call_callback, call_guest, name_trap, Host};
use super::mem;
use crate::bpf::{self, Loaded};
use crate::error::{Error, Result};
use crate::event::out::{Format, Records};
use crate::event::pipeline::{self, Pipeline};
use crate::package::Object;
use crate::text::push_json_str;
use crate::{args, package};

const EVENT_BUF: i32 = 64 << 10;

struct Program {
    object: Object,
    globals: Vec<(String, Vec<u8>)>,
    loaded: Option<Loaded>,
    /// Its event pipeline and record formats, made at `run_bpf` before anything attaches.
    wired: Option<(Pipeline, Vec<Records>)>,
}

#[derive(Default)]
pub struct EwasmState {
    programs: Vec<Program>,
    /// Guest buffer for events (allocated on first use).
    event_buf: Option<i32>,
}

fn guest_malloc(
    ctx: &mut impl wasmi::AsContextMut<Data = Host>,
    size: i32,
) -> std::result::Result<i32, Trap> {
    let malloc = ctx
        .as_context()
        .data()
        .exports
        .get("malloc")
        .copied()
        .ok_or_else(|| {
            Trap::new("env ABI modules must export malloc (link with -Wl,--export=malloc)")
        })?;
    let mut ret = [Val::I32(0)];
    call_guest(ctx.as_context_mut(), &malloc, &[Val::I32(size)], &mut ret)?;
    match ret[0].i32() {
        Some(p) if p != 0 => Ok(p),
        _ => Err(Trap::new(format!("guest malloc({size}) failed"))),
    }
}

/// Calls `bpf_main` with the arguments as a JSON array in guest memory.
pub fn call_bpf_main(
    store: &mut Store<Host>,
    instance: &Instance,
    argv: &[String],
) -> std::result::Result<i32, Trap> {
    if let Some(init) = store.data().exports.get("_initialize").copied() {
        call_guest(&mut *store, &init, &[], &mut [])?;
    }
    let mut argj = String::from("[");
    for (i, a) in argv.iter().enumerate() {
        if i > 0 {
            argj.push(',');
        }
        push_json_str(&mut argj, a);
    }
    argj.push(']');
    let mut bytes = argj.into_bytes();
    bytes.push(0);
    let p = guest_malloc(store, bytes.len() as i32)?;
    let mem = store.data().memory.ok_or_else(|| Trap::new("no memory"))?;
    if !mem::write(mem.data_mut(&mut *store), p, &bytes) {
        return Err(Trap::new(
            "guest malloc returned a buffer outside its memory",
        ));
    }
    let main = instance
        .get_func(&*store, "bpf_main")
        .ok_or_else(|| Trap::new("no bpf_main"))?;
    let mut ret = [Val::I32(0)];
    call_guest(
        &mut *store,
        &main,
        &[Val::I32(p), Val::I32(bytes.len() as i32 - 1)],
        &mut ret,
    )?;
    Ok(ret[0].i32().unwrap_or(0))
}

fn create(h: &mut Host, json_bytes: &[u8]) -> Result<i32> {
    let end = json_bytes
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(json_bytes.len());
    let object = package::load(json_bytes[..end].to_vec(), "package.json")?;
    // Values set by the guest (set_bpf_program_global_var) arrive as `value`: apply them.
    let parsed = args::parse(&object.meta, &object.btf, &Default::default(), &[])?;
    h.ewasm.programs.push(Program {
        object,
        globals: parsed.globals,
        loaded: None,
        wired: None,
    });
    Ok(h.ewasm.programs.len() as i32 - 1)
}

/// Loads and attaches program `id`. Its event buffers are open before the first program
/// attaches: a perf event array drops what is emitted on a CPU whose buffer is not open.
fn start(h: &mut Host, id: i32) -> Result<()> {
    let control = h.control.clone();
    let event_type = h.config.event_type.clone();
    let p = h
        .ewasm
        .programs
        .get_mut(id as usize)
        .ok_or_else(|| Error::invalid(format!("run_bpf: no program with id {id}")))?;
    let mut loaded = bpf::load(&p.object, &p.globals, &h.config.load)?;
    let et = match &event_type {
        Some(n) => Some(p.object.find_struct(n).ok_or_else(|| {
            Error::invalid(format!(
                "--event-type {n}: no struct named {n} in the package's BTF"
            ))
        })?),
        None => None,
    };
    let wired = pipeline::wire(&p.object, &mut loaded, et, control)?;
    let skipped = loaded.attach_all(&p.object.meta.progs, &h.config.attach)?;
    for n in wired.notes.iter().chain(&skipped) {
        h.sink.note(n);
    }
    let records = wired
        .maps
        .into_iter()
        .map(|(name, layout)| Records::new(layout, &name, Format::Json, &Default::default()))
        .collect::<Result<_>>()?;
    p.wired = Some((wired.pipeline, records));
    p.loaded = Some(loaded);
    Ok(())
}

pub fn add_to_linker(linker: &mut Linker<Host>) -> std::result::Result<(), wasmi::Error> {
    linker.func_wrap(
        "env",
        "create_bpf",
        |mut c: Caller<'_, Host>, ptr: i32, len: i32| -> i32 {
            let (m, h) = mem::split(&mut c);
            let Some(bytes) = mem::slice(m, ptr, len).map(<[u8]>::to_vec) else {
                h.sink.note(&format!(
                    "create_bpf: package at {ptr:#x}+{len} lies outside guest memory"
                ));
                return -1;
            };
            create(h, &bytes).unwrap_or_else(|e| {
                h.sink.note(&format!("create_bpf: {e}"));
                -1
            })
        },
    )?;
    linker.func_wrap(
        "env",
        "run_bpf",
        |mut c: Caller<'_, Host>, id: i32| -> i32 {
            let h = c.data_mut();
            match start(h, id) {
                Ok(()) => 0,
                Err(e) => {
                    h.sink.note(&format!("run_bpf: {e}"));
                    -1
                }
            }
        },
    )?;
    linker.func_wrap("env", "wait_and_poll_bpf", wait_and_poll)?;
    Ok(())
}

/// The pipeline of program `id` and its records' formats, taken by its (one) waiter.
fn wired(h: &mut Host, id: i32) -> Option<(Pipeline, Vec<Records>)> {
    h.ewasm
        .programs
        .get_mut(id as usize)
        .and_then(|p| p.wired.take())
}

/// Blocks until Ctrl-C, SIGTERM or --timeout, handing each event as a JSON line to the guest's
/// `process_event` (or printing it when the guest exports none). Returns 0 on a normal stop.
fn wait_and_poll(mut c: Caller<'_, Host>, id: i32) -> std::result::Result<i32, Trap> {
    if !c.data_mut().before_blocking()? {
        return Ok(0);
    }
    let Some((mut pipeline, records)) = wired(c.data_mut(), id) else {
        c.data_mut().sink.note(&format!(
            "wait_and_poll_bpf: program {id} is not running (run_bpf it first; one waiter each)"
        ));
        return Ok(-1);
    };
    let process = match c.data().exports.get("process_event").copied() {
        Some(f) => Some(
            f.typed::<(i32, i32, i32), i32>(&c)
                .map_err(|_| Trap::new("process_event must be (i32, i32, i32) -> i32"))?,
        ),
        None => None,
    };
    let mut line = String::with_capacity(4096);
    loop {
        let polled = pipeline
            .poll(Duration::from_millis(500), |m, data| {
                line.clear();
                records[m].write(&mut line, "", data);
                match process {
                    None => match c.data_mut().write_stdout(line.as_bytes()) {
                        Ok(()) => ControlFlow::Continue(()),
                        Err(_) => ControlFlow::Break(Ok(())),
                    },
                    Some(f) => {
                        line.pop(); // the newline: process_event gets the JSON text alone
                        match deliver(&mut c, &f, &line) {
                            Ok(()) => ControlFlow::Continue(()),
                            Err(e) => ControlFlow::Break(Err(name_trap(e, "process_event"))),
                        }
                    }
                }
            })
            .map_err(|e| Trap::new(e.to_string()))?;
        match polled.broke {
            Some(Err(e)) => return Err(e),
            // The output's reader went away: end as a stop does.
            Some(Ok(())) => return Ok(0),
            None => {}
        }
        // The lines of this poll go out now (the guest does not block between polls here).
        if c.data_mut().flush_output().is_err() {
            return Ok(0);
        }
        c.data_mut().hold_while_paused();
        if polled.stop {
            c.data_mut().interrupted_wait();
            return Ok(0);
        }
    }
}

/// Copies one event (NUL-terminated JSON) into the guest's event buffer and calls
/// process_event(0, buf, len). A negative return drops the event: nothing more to do here.
fn deliver(
    c: &mut Caller<'_, Host>,
    f: &wasmi::TypedFunc<(i32, i32, i32), i32>,
    text: &str,
) -> std::result::Result<(), Trap> {
    let buf = match c.data().ewasm.event_buf {
        Some(b) => b,
        None => {
            let b = guest_malloc(c, EVENT_BUF)?;
            c.data_mut().ewasm.event_buf = Some(b);
            b
        }
    };
    let n = text.len().min(EVENT_BUF as usize - 1);
    let (m, _) = mem::split(c);
    let Some(dst) = mem::slice_mut(m, buf, n as i32 + 1) else {
        return Err(Trap::new(
            "the guest's event buffer lies outside its memory",
        ));
    };
    dst[..n].copy_from_slice(&text.as_bytes()[..n]);
    dst[n] = 0;
    call_callback(&mut *c, f, (0, buf, n as i32)).map(|_| ())
}
