/* /init of the QEMU test guests: mounts what edge-ecli needs, runs each test case (edge-ecli
 * with a package built once on the host, an event triggered here, the printed output checked),
 * prints one line per case and a final EDGE-RESULT line, and powers off.
 *
 * Built static for each arch by targets/qemu/run.sh. Cases whose outcome depends on the kernel
 * (kprobe at offset 0 on riscv64, fentry) expect what that kernel can do; the host reads the
 * lines and builds the tier table from them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int passed, failed;
static char out_buf[1 << 16], err_buf[1 << 14];
/* The next start() runs edge-ecli with sysfs BTF hidden: in a mount namespace of its own, a
 * tmpfs over /sys/kernel/btf (the kernel still has its BTF; edge-ecli cannot see it). */
static int hide_btf_next;
/* The exit code of a child start() saw end before it was ready (-1: killed by a signal). */
static int early_exit = -1;

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void slurp(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? 0 : read(fd, buf, cap - 1);
	buf[n > 0 ? n : 0] = 0;
	if (fd >= 0)
		close(fd);
}

/* Starts edge-ecli with argv, stdout/stderr to files; waits for `ready` on stderr. */
static pid_t start(char *const argv[], const char *ready, double timeout)
{
	unlink("/tmp/out");
	unlink("/tmp/err");
	int hide = hide_btf_next;
	hide_btf_next = 0;
	pid_t p = fork();
	if (p == 0) {
		if (hide && (unshare(CLONE_NEWNS) || mount("tmpfs", "/sys/kernel/btf", "tmpfs", 0, NULL)))
			_exit(126);
		int o = open("/tmp/out", O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int e = open("/tmp/err", O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(o, 1);
		dup2(e, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	double t0 = now();
	while (now() - t0 < timeout) {
		slurp("/tmp/err", err_buf, sizeof(err_buf));
		if (ready && strstr(err_buf, ready))
			return p;
		int st;
		if (waitpid(p, &st, WNOHANG) == p) {
			early_exit = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
			return -1; /* ended before ready: the caller looks at the output */
		}
		usleep(20000);
	}
	return p;
}

/* Waits for the child (signalling it with SIGINT after `grace` s), returns its exit code. */
static int finish(pid_t p, double grace)
{
	int st = 0;
	double t0 = now();
	if (p > 0) {
		while (waitpid(p, &st, WNOHANG) != p) {
			if (now() - t0 > grace) {
				kill(p, SIGINT);
				waitpid(p, &st, 0);
				break;
			}
			usleep(20000);
		}
	}
	slurp("/tmp/out", out_buf, sizeof(out_buf));
	slurp("/tmp/err", err_buf, sizeof(err_buf));
	return p > 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Waits up to `secs` for `needle` in the case's stdout. */
static void wait_out(const char *needle, double secs)
{
	double t0 = now();
	while (now() - t0 < secs) {
		slurp("/tmp/out", out_buf, sizeof(out_buf));
		if (strstr(out_buf, needle))
			return;
		usleep(50000);
	}
}

static void report(const char *name, int ok, double secs, const char *why)
{
	printf("EDGE-CASE %s %s %.1fs%s%s\n", name, ok ? "PASS" : "FAIL", secs, why ? " " : "", why ? why : "");
	if (!ok) {
		printf("--- stdout:\n%.2000s\n--- stderr:\n%.2000s\n---\n", out_buf, err_buf);
		failed++;
	} else {
		passed++;
	}
	fflush(stdout);
}

static int contains_all(const char *hay, int n, ...)
{
	va_list ap;
	va_start(ap, n);
	int ok = 1;
	for (int i = 0; i < n; i++)
		if (!strstr(hay, va_arg(ap, const char *)))
			ok = 0;
	va_end(ap);
	return ok;
}

static pid_t sleeper(void)
{
	pid_t c = fork();
	if (c == 0) {
		signal(SIGUSR1, SIG_IGN);
		pause();
		_exit(0);
	}
	return c;
}

static void trigger(char *const argv[])
{
	pid_t c = fork();
	if (c == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	waitpid(c, NULL, 0);
}

/* sigsnoop through a perf event array: a SIGUSR1 we send shows up with our pids. */
static void case_signal(const char *name, char *pkg, int wasm)
{
	char me[16], want_tpid[48];
	snprintf(me, sizeof(me), "%d", getpid());
	char *argv_pkg[] = {"/edge-ecli", "-v", "run", "-j", "--timeout", "20", pkg, "--filtered_pid", me, NULL};
	char *argv_wasm[] = {"/edge-ecli", "run", "--timeout", "20", pkg, "-p", me, "-s", "10", NULL};
	double t0 = now();
	pid_t p = start(wasm ? argv_wasm : argv_pkg, wasm ? "tracing signals" : "phases", 120);
	pid_t c = sleeper();
	usleep(50000);
	kill(c, SIGUSR1);
	double t1 = now();
	snprintf(want_tpid, sizeof(want_tpid), "\"tpid\":%d", c);
	while (now() - t1 < 10) {
		slurp("/tmp/out", out_buf, sizeof(out_buf));
		if (strstr(out_buf, want_tpid))
			break;
		usleep(50000);
	}
	kill(c, SIGKILL);
	waitpid(c, NULL, 0);
	int code = finish(p, 0);
	int ok = code == 0 && contains_all(out_buf, 2, want_tpid, "\"sig\":10");
	report(name, ok, now() - t0, ok ? NULL : "no event for the signal we sent");
}

/* bootstrap through a ring buffer: exec and exit of /edge-trigger with exit code 7. */
static void case_exec(const char *name, char *pkg)
{
	char *argv[] = {"/edge-ecli", "-v", "run", "-j", "--timeout", "20", pkg, "--target_comm", "edge-trigger", NULL};
	char *trig[] = {"/edge-trigger", "exit", "7", NULL};
	double t0 = now();
	pid_t p = start(argv, "phases", 120);
	trigger(trig);
	wait_out("\"exit_code\":7", 10);
	int code = finish(p, 0);
	int ok = code == 0 && contains_all(out_buf, 2, "\"filename\":\"/edge-trigger\"", "\"exit_code\":7");
	report(name, ok, now() - t0, ok ? NULL : "exec/exit of /edge-trigger not seen");
}

/* opensnoop: an open of a known path. */
static void case_open(const char *name, char *pkg)
{
	char *argv[] = {"/edge-ecli", "-v", "run", "-j", "--timeout", "20", pkg, "--target_comm", "edge-trigger", NULL};
	char *trig[] = {"/edge-trigger", "open", "/tmp/edge-guest-known-path", NULL};
	double t0 = now();
	pid_t p = start(argv, "phases", 120);
	trigger(trig);
	wait_out("edge-guest-known-path", 10);
	int code = finish(p, 0);
	int ok = code == 0 && contains_all(out_buf, 2, "\"fname\":\"/tmp/edge-guest-known-path\"", "\"ret\":-2");
	report(name, ok, now() - t0, ok ? NULL : "open of the known path not seen");
}

/* A probe on a kernel function (kprobe via ksyscall/kill, or fentry on do_unlinkat): either
 * the event shows up, or, where this kernel cannot, the run fails with `expect_err`. */
static void case_probe(const char *name, char *pkg, const char *action, const char *expect_err)
{
	char *argv[] = {"/edge-ecli", "-v", "run", "-j", "--timeout", "20", pkg, NULL};
	double t0 = now();
	pid_t p = start(argv, "phases", 120);
	if (p < 0) {
		int code = finish(p, 0);
		(void)code;
		int ok = expect_err && strstr(err_buf, expect_err);
		report(name, ok, now() - t0, ok ? "refused as expected on this kernel" : "attach failed");
		if (ok)
			printf("EDGE-NOTE %s: %.400s", name, err_buf);
		return;
	}
	if (!strcmp(action, "kill")) {
		pid_t c = sleeper();
		usleep(50000);
		kill(c, SIGUSR1);
		kill(c, SIGKILL);
		waitpid(c, NULL, 0);
	} else {
		int fd = open("/tmp/edge-unlink-me", O_CREAT | O_WRONLY, 0644);
		close(fd);
		unlink("/tmp/edge-unlink-me");
	}
	wait_out("\"comm\":\"init\"", 10);
	int code = finish(p, 0);
	int ok = !expect_err && code == 0 && strstr(out_buf, "\"comm\":\"init\"");
	report(name, ok, now() - t0, ok ? NULL : expect_err ? "expected a refusal" : "no event");
}

/* lsm/path_mkdir (x86_64 guest, booted with bpf in lsm=): the program reports a mkdir and
 * refuses one, and once edge-ecli has stopped the same mkdir works again. */
static void case_lsm(const char *name, char *pkg)
{
	char *argv[] = {"/edge-ecli", "-v", "run", "-j", "--timeout", "20", pkg, NULL};
	double t0 = now();
	rmdir("/tmp/edge-denied");
	pid_t p = start(argv, "phases", 120);
	if (p < 0) {
		finish(p, 0);
		report(name, 0, now() - t0, "attach failed");
		return;
	}
	int denied = mkdir("/tmp/edge-denied", 0755), denied_errno = errno;
	int allowed = mkdir("/tmp/edge-allowed", 0755);
	wait_out("edge-allowed", 10);
	int code = finish(p, 0);
	int after = mkdir("/tmp/edge-denied", 0755);
	int ok = denied == -1 && denied_errno == EPERM && allowed == 0 && after == 0 && code == 0 &&
		 contains_all(out_buf, 3, "\"name\":\"edge-denied\"}", "\"denied\":1", "\"comm\":\"init\"");
	report(name, ok, now() - t0,
	       ok ? NULL : after ? "mkdir still refused after edge-ecli stopped" : "mkdir not refused or not seen");
}

/* Runs `pkg` with extra argv until `ready`, does `act`, stops it and returns its output. */
static int run_with(char *pkg, const char *ready, void (*act)(void), char *extra1, char *extra2)
{
	/* edge-ecli's own flags go before the package */
	char *argv[] = {"/edge-ecli", "-v", "run", "--timeout", "20", extra1, extra2, pkg, NULL};
	if (!extra1) {
		argv[5] = pkg;
		argv[6] = NULL;
	}
	pid_t p = start(argv, ready, 120);
	if (p < 0)
		return finish(p, 0);
	act();
	usleep(300000);
	return finish(p, 0); /* SIGINT: results print at exit */
}

/* unlinkat(2) itself: x86_64's unlink(2) is another syscall, arm64 and riscv64 have none. */
static void unlink_a_file(void)
{
	int fd = open("/tmp/edge-unlink-me", O_CREAT | O_WRONLY, 0644);
	close(fd);
	unlinkat(AT_FDCWD, "/tmp/edge-unlink-me", 0);
}

/* fentry and kprobe on one function: exactly one attaches (fentry where the kernel has it);
 * tp_btf and raw_tp on one tracepoint: the same. Nothing is counted twice. */
static void case_alternatives(const char *name, char *pkg)
{
	double t0 = now();
	int code = run_with(pkg, "phases", unlink_a_file, "--attach",
			    "syscalls/sys_enter_edge_placeholder=syscalls/sys_enter_getppid");
	int fentry = strstr(out_buf, "@fentry_hits:") != NULL;
	int kprobe = strstr(out_buf, "@kprobe_hits:") != NULL;
	int ok = code == 0 && (fentry || kprobe) && !(fentry && kprobe) &&
		 strstr(out_buf, "@raw_tp_hits:") == NULL;
	report(name, ok, now() - t0, ok ? (fentry ? "fentry attached, its kprobe alternative not" : "kprobe attached (no fentry here)") : "both or neither of an alternative pair ran");
}

/* A typed __ksym variable (per-CPU runqueues), placed by the kernel through kallsyms. */
static void case_ksymvar(const char *name, char *pkg)
{
	char *argv[] = {"/edge-ecli", "-v", "run", "-j", "--timeout", "20", pkg, NULL};
	double t0 = now();
	pid_t p = start(argv, "phases", 120);
	if (p >= 0)
		unlink_a_file();
	wait_out("this_cpu_matches", 10);
	int code = finish(p, 0);
	/* cpu0 proves the placement (per-CPU runqueues of CPU 0 say 0); this_cpu_matches is
	 * shown, not required: riscv64's interpreter (JIT off) reports another CPU's there. */
	int ok = code == 0 && strstr(out_buf, "\"cpu0\":0") && strstr(out_buf, "\"this_cpu\":");
	report(name, ok, now() - t0,
	       ok ? (strstr(out_buf, "\"this_cpu_matches\":1") ? "this CPU's runqueue too" : "this_cpu_ptr disagrees with the CPU id") : "runqueues not read");
}

/* Kernel stacks from a kprobe, symbolized from the guest's kallsyms at exit. */
static void case_kstacks(const char *name, char *pkg)
{
	double t0 = now();
	int code = run_with(pkg, "phases", unlink_a_file, NULL, NULL);
	int ok = code == 0 && contains_all(out_buf, 3, "@ks_counts[", "kern_stack_id:", "do_unlinkat+");
	report(name, ok, now() - t0, ok ? NULL : "no symbolized kernel stack");
}

/* Runs `argv` (edge-ecli; sysfs BTF hidden when `hide`), execs /edge-trigger once attached,
 * and checks the outcome: with `ok`, an exit 0 and the trigger's exec event (our pid as its
 * parent, read by CO-RE) and `err_has` on stderr (where the kernel BTF came from); without,
 * an exit 1 before attaching and `err_has` in the error. */
static void case_btf(const char *name, char *const argv[], int hide, int ok, const char *err_has)
{
	char *trig[] = {"/edge-trigger", "exit", "7", NULL};
	char want_ppid[32];
	snprintf(want_ppid, sizeof(want_ppid), "\"ppid\":%d", getpid());
	double t0 = now();
	hide_btf_next = hide;
	pid_t p = start(argv, "phases", 120);
	if (p > 0)
		trigger(trig);
	if (ok)
		wait_out("\"filename\":\"/edge-trigger\"", 10);
	int code = finish(p, 0);
	if (p < 0)
		code = early_exit;
	int good = ok ? code == 0 && contains_all(out_buf, 2, "\"filename\":\"/edge-trigger\"", want_ppid) &&
				strstr(err_buf, err_has)
		      : p < 0 && code == 1 && strstr(err_buf, err_has);
	report(name, good, now() - t0, good ? NULL : ok ? "no exec event, or not from that BTF" : "not the expected error");
	if (good && !ok)
		printf("EDGE-NOTE %s: %.1500s\n", name, err_buf);
}

static int run_wait(char *const argv[])
{
	pid_t c = fork();
	if (c == 0) {
		int e = open("/tmp/err", O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(e, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	int st = 0;
	waitpid(c, &st, 0);
	slurp("/tmp/err", err_buf, sizeof(err_buf));
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int copy_file(const char *from, const char *to)
{
	static char buf[1 << 16];
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ssize_t n = 0;
	while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, n) != n)
			n = -1;
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return in < 0 || out < 0 || n < 0 ? -1 : 0;
}

static void mkdirs(const char *path)
{
	char p[512];
	snprintf(p, sizeof(p), "%s", path);
	for (char *s = p + 1; *s; s++)
		if (*s == '/') {
			*s = 0;
			mkdir(p, 0755);
			*s = '/';
		}
	mkdir(p, 0755);
}

/* Where the kernel's BTF comes from, on a kernel that has it: this kernel's own BTF is copied
 * into the node directory (BTFHub layout, this guest's key) and cut into a package here, on
 * this arch; then sysfs, --btf, the package, the node directory and nothing, in that order,
 * with sysfs hidden where the order needs it. */
static void cases_btf_order(const char *machine, const char *release)
{
	const char *arch = strcmp(machine, "aarch64") ? machine : "arm64";
	char dir[256], file[512], line[700];
	snprintf(dir, sizeof(dir), "/var/lib/edge-ecli/btf/debian/13/%s", arch);
	snprintf(file, sizeof(file), "%s/%s.btf", dir, release);
	mkdirs(dir);
	if (copy_file("/sys/kernel/btf/vmlinux", file) || copy_file("/sys/kernel/btf/vmlinux", "/tmp/own.btf")) {
		report("btf-order/setup", 0, 0, "cannot copy /sys/kernel/btf/vmlinux");
		return;
	}
	char *pack[] = {"/edge-ecli", "pack", "/pkg/execcompat.bpf.o", "--btfgen", "/var/lib/edge-ecli/btf", "-o",
			"/tmp/embedded.json", NULL};
	double t0 = now();
	int code = run_wait(pack);
	report("btf-order/pack--btfgen", code == 0, now() - t0, code ? "pack --btfgen failed" : NULL);
	printf("EDGE-NOTE btf-order/pack--btfgen: %s", err_buf);
	char *run_sys[] = {"/edge-ecli", "-v", "run", "-j", "--timeout", "20", "/tmp/embedded.json", "--target_comm",
			   "edge-trigger", NULL};
	case_btf("btf-order/sysfs-first", run_sys, 0, 1, "kernel BTF: sysfs (/sys/kernel/btf/vmlinux)");
	char *run_file[] = {"/edge-ecli", "-v", "run", "-j", "--timeout", "20", "--btf", "/tmp/own.btf",
			    "/tmp/embedded.json", "--target_comm", "edge-trigger", NULL};
	case_btf("btf-order/--btf-wins", run_file, 0, 1, "kernel BTF: --btf /tmp/own.btf");
	snprintf(line, sizeof(line), "kernel BTF: the package (debian/13/%s/%s.btf)", arch, release);
	case_btf("btf-order/package", run_sys, 1, 1, line);
	char *run_plain[] = {"/edge-ecli", "-v", "run", "-j", "--timeout", "20", "/pkg/execcompat.json", "--target_comm",
			     "edge-trigger", NULL};
	snprintf(line, sizeof(line), "kernel BTF: the node directory (%s)", file);
	case_btf("btf-order/node-dir", run_plain, 1, 1, line);
	char *run_none[] = {"/edge-ecli", "-v", "run", "-j", "--timeout", "20", "--btf-dir", "/nonexistent",
			    "/pkg/execcompat.json", "--target_comm", "edge-trigger", NULL};
	snprintf(line, sizeof(line), "kernel BTF not found for debian/13/%s/%s.btf", arch, release);
	case_btf("btf-order/none", run_none, 1, 0, line);
}

/* The test kernels built without BTF (targets/qemu/build-kernels.sh): `nobtf`, and
 * `noringbuf` (no ring buffers, no bpf_probe_read_kernel/_user either). The node directory
 * holds their BTF (pahole's), the packages carry it (pack --btfgen). */
static void cases_nobtf(const char *suite, const char *release)
{
	int noringbuf = !strcmp(suite, "noringbuf");
	char line[300];
	char *embedded[] = {"/edge-ecli", "-v", "run", "-j", "--timeout", "20", "/pkg/execcompat_btf.json",
			    "--target_comm", "edge-trigger", NULL};
	snprintf(line, sizeof(line), "kernel BTF: the package (debian/12/x86_64/%s.btf)", release);
	case_btf("execcompat_btf.json/embedded-btf", embedded, 0, 1, line);
	if (noringbuf)
		case_btf("execcompat_btf.json/ringbuf->perf", embedded, 0, 1, "created as a perf event array");
	char *node[] = {"/edge-ecli", "-v", "run", "-j", "--timeout", "20", "/pkg/execcompat.json", "--target_comm",
			"edge-trigger", NULL};
	case_btf("execcompat.json/node-dir", node, 0, 1, "kernel BTF: the node directory (/var/lib/edge-ecli/btf/");
	char *none[] = {"/edge-ecli", "-v", "run", "-j", "--timeout", "20", "--btf-dir", "/nonexistent",
			"/pkg/execcompat.json", "--target_comm", "edge-trigger", NULL};
	snprintf(line, sizeof(line), "kernel BTF not found for debian/12/x86_64/%s.btf", release);
	case_btf("execcompat.json/no-btf-anywhere", none, 0, 0, line);
	char *tpbtf[] = {"/edge-ecli", "-v", "run", "--timeout", "20", "/pkg/tpbtf.bpf.o", NULL};
	case_btf("tpbtf.bpf.o/tp_btf", tpbtf, 0, 0, "tp_btf programs need the kernel's own BTF");
	if (noringbuf) {
		char *rb[] = {"/edge-ecli", "-v", "run", "-j", "--timeout", "20", "/pkg/bootstrap_btf.json", NULL};
		case_btf("bootstrap_btf.json/no-ringbuf", rb, 0, 0,
			 "is a ring buffer (BPF_MAP_TYPE_RINGBUF, Linux 5.8), which this kernel lacks");
	} else {
		case_exec("bootstrap_btf.json/ringbuf", "/pkg/bootstrap_btf.json");
	}
	case_signal("sigsnoop.json/perf+node-dir", "/pkg/sigsnoop.json", 0);
	case_signal("sigsnoop_btf.wasm/embedded-btf", "/pkg/sigsnoop_btf.wasm", 1);
	if (!noringbuf)
		case_alternatives("alternatives.bpf.o/kprobe+raw_tp", "/pkg/alternatives.bpf.o");
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	mount("proc", "/proc", "proc", 0, NULL);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, NULL);
	mount("bpf", "/sys/fs/bpf", "bpf", 0, NULL);
	mount("tmpfs", "/tmp", "tmpfs", 0, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct utsname u;
	uname(&u);
	char jit[8] = "?";
	slurp("/proc/sys/net/core/bpf_jit_enable", jit, sizeof(jit));
	jit[strcspn(jit, "\n")] = 0;
	printf("EDGE-GUEST arch=%s kernel=%s jit=%s btf=%s\n", u.machine, u.release, jit,
	       access("/sys/kernel/btf/vmlinux", R_OK) == 0 ? "yes" : "no");

	/* edge_suite=nobtf|noringbuf on the kernel command line: the kernels without BTF. */
	const char *suite = getenv("edge_suite");
	if (suite) {
		cases_nobtf(suite, u.release);
		goto done;
	}

	case_signal("sigsnoop.bpf.o/perf", "/pkg/sigsnoop.bpf.o", 0);
	case_signal("sigsnoop.json/perf", "/pkg/sigsnoop.json", 0);
	case_exec("bootstrap.json/ringbuf", "/pkg/bootstrap.json");
	case_open("opensnoop.bpf.o/ringbuf", "/pkg/opensnoop.bpf.o");
	case_signal("sigsnoop.wasm/wasm_bpf", "/pkg/sigsnoop.wasm", 1);
#if defined(__riscv)
	/* riscv64 6.12 has no KPROBES_ON_FTRACE: a kprobe at offset 0 of a function is refused. */
	case_probe("ksyscall.bpf.o/kprobe", "/pkg/ksyscall.bpf.o", "kill", "offset 0");
	case_probe("kprobe_riscv.bpf.o/kprobe+8", "/pkg/kprobe_riscv.bpf.o", "kill", NULL);
#else
	case_probe("ksyscall.bpf.o/kprobe", "/pkg/ksyscall.bpf.o", "kill", NULL);
#endif
	case_probe("fentry.bpf.o/fentry", "/pkg/fentry.bpf.o", "unlink", NULL);
	case_alternatives("alternatives.bpf.o/fentry|kprobe", "/pkg/alternatives.bpf.o");
	case_ksymvar("ksymvar.bpf.o/typed-ksym", "/pkg/ksymvar.bpf.o");
#if !defined(__riscv)
	case_kstacks("kstacks.bpf.o/kprobe-stacks", "/pkg/kstacks.bpf.o");
#endif
#if defined(__x86_64__)
	case_lsm("lsmmkdir.bpf.o/lsm", "/pkg/lsmmkdir.bpf.o");
#endif
	cases_btf_order(u.machine, u.release);

done:

	printf("EDGE-RESULT arch=%s kernel=%s jit=%s pass=%d fail=%d\n", u.machine, u.release, jit, passed,
	       failed);
	fflush(stdout);
	sync();
	/* The kernels built here have no ACPI to power off with: they reset (QEMU runs them with
	 * -no-reboot, so a reset ends it too). */
	reboot(suite ? RB_AUTOBOOT : RB_POWER_OFF);
	return 0;
}
