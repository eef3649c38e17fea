/* sigsnoop on the seed article's `env` ABI: the module embeds a whole package.json, edits its
 * globals, hands it to create_bpf/run_bpf and receives each event as JSON in process_event,
 * adding the signal's name in Wasm.
 *
 *   ewasm_sigsnoop [PID]      trace signals sent by PID (default: all)
 *
 * Build (no _start: the entry is bpf_main):
 *   clang-19 --target=wasm32-wasi --sysroot=/usr -O2 -mexec-model=reactor \
 *     -Wl,--export=bpf_main -Wl,--export=process_event -Wl,--export=malloc \
 *     -DSIGSNOOP_JSON='"sigsnoop.json"' examples/c/ewasm_sigsnoop.c -o ewasm_sigsnoop.wasm
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SIGSNOOP_JSON
#define SIGSNOOP_JSON "sigsnoop.json"
#endif

static const char package_json[] = {
#embed SIGSNOOP_JSON
	, 0};

__attribute__((import_module("env"), import_name("create_bpf"))) int create_bpf(char *json, int len);
__attribute__((import_module("env"), import_name("run_bpf"))) int run_bpf(int id);
__attribute__((import_module("env"), import_name("wait_and_poll_bpf"))) int wait_and_poll_bpf(int id);

static const char *sig_name[] = {
	"N/A", "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS",
	"SIGFPE", "SIGKILL", "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM",
	"SIGSTKFLT", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG",
	"SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS",
};

/* Sets `"value":VALUE` on the variable NAME of the package (as the seed's
 * set_bpf_program_global_var did with cJSON). Returns a malloc'd package. */
static char *set_global(const char *json, const char *name, const char *value)
{
	char key[128];
	snprintf(key, sizeof(key), "{\"name\":\"%s\"", name);
	const char *at = strstr(json, key);
	if (!at)
		return NULL;
	size_t head = (size_t)(at - json) + strlen(key);
	char *out = malloc(strlen(json) + strlen(value) + 16);
	memcpy(out, json, head);
	sprintf(out + head, ",\"value\":%s%s", value, json + head);
	return out;
}

int process_event(int ctx, char *e, int len)
{
	(void)ctx;
	const char *s = strstr(e, "\"sig\":");
	int sig = s ? atoi(s + 6) : 0;
	const char *name = sig > 0 && sig < 32 ? sig_name[sig] : "SIGRT";
	/* e is `{...}`: print it with one more member. */
	printf("%.*s,\"sig_name\":\"%s\"}\n", len - 1, e, name);
	fflush(stdout);
	return 0;
}

int bpf_main(char *env_json, int len)
{
	(void)len;
	/* env_json is ["ewasm_sigsnoop", args...]: the optional PID is the second string. */
	char pid[16] = "0";
	const char *second = strchr(env_json, ',');
	if (second && second[1] == '"')
		snprintf(pid, sizeof(pid), "%d", atoi(second + 2));
	char *pkg = set_global(package_json, "filtered_pid", pid);
	if (!pkg)
		return 1;
	int id = create_bpf(pkg, (int)strlen(pkg));
	if (id < 0 || run_bpf(id) < 0)
		return 1;
	fprintf(stderr, "ewasm_sigsnoop: tracing signals, Ctrl-C to stop\n");
	return wait_and_poll_bpf(id) < 0 ? 1 : 0;
}
