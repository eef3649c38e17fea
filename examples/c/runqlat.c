/* A runqlat-like app: every interval it reads a histogram map with map_operate (get_next_key
 * + lookup), prints it like libbpf-tools, and clears it. The kernel half is
 * tests/fixtures/writehist.bpf.c (write sizes of one command, log2 buckets).
 *
 *   runqlat [-c COMM] [-i INTERVAL_MS] [-n COUNT]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "edge_bpf.h"

#ifndef WRITEHIST_OBJ
#define WRITEHIST_OBJ "writehist.bpf.o"
#endif

static const unsigned char obj_bytes[] = {
#embed WRITEHIST_OBJ
};

#define MAX_SLOTS 27
struct hist {
	unsigned int slots[MAX_SLOTS];
};

static void print_stars(unsigned int val, unsigned int val_max, int width)
{
	int num_stars = (val < val_max ? val : val_max) * (unsigned long long)width / val_max;
	for (int i = 0; i < num_stars; i++)
		putchar('*');
	for (int i = num_stars; i < width; i++)
		putchar(' ');
	if (val > val_max)
		putchar('+');
}

static void print_log2_hist(const unsigned int *vals, int n, const char *type)
{
	int idx_max = -1;
	unsigned int val_max = 0;
	for (int i = 0; i < n; i++) {
		if (vals[i] > 0)
			idx_max = i;
		if (vals[i] > val_max)
			val_max = vals[i];
	}
	if (idx_max < 0)
		return;
	printf("%*s%-*s : count    distribution\n", idx_max <= 32 ? 5 : 15, "",
	       idx_max <= 32 ? 19 : 29, type);
	for (int i = 0; i <= idx_max; i++) {
		unsigned long long low = (1ULL << (i + 1)) >> 1, high = (1ULL << (i + 1)) - 1;
		if (low == high)
			low -= 1;
		int width = idx_max <= 32 ? 10 : 20;
		printf("%*lld -> %-*lld : %-8d |", width, low, width, high, vals[i]);
		print_stars(vals[i], val_max, idx_max <= 32 ? 40 : 20);
		printf("|\n");
	}
}

int main(int argc, char **argv)
{
	int opt, interval_ms = 1000, count = -1;
	char comm[16] = {0};
	while ((opt = getopt(argc, argv, "c:i:n:h")) != -1) {
		switch (opt) {
		case 'c': strncpy(comm, optarg, sizeof(comm) - 1); break;
		case 'i': interval_ms = atoi(optarg); break;
		case 'n': count = atoi(optarg); break;
		default:
			fprintf(stderr, "Usage: runqlat [-c COMM] [-i INTERVAL_MS] [-n COUNT]\n");
			return opt == 'h' ? 0 : 2;
		}
	}
	struct bpf_object *obj = bpf_object__open_mem(obj_bytes, sizeof(obj_bytes));
	if (!obj || bpf_object__set_global(obj, "target_comm", comm, sizeof(comm)) ||
	    bpf_object__load(obj) || bpf_program__attach_by_name(obj, "hist_write", NULL))
		return 1;
	int fd = bpf_object__find_map_fd_by_name(obj, "hists");
	fprintf(stderr, "runqlat: tracing write sizes, Ctrl-C to stop\n");
	struct timespec ts = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};
	while (count != 0) {
		if (nanosleep(&ts, NULL))
			break; /* interrupted: Ctrl-C, SIGTERM or --timeout */
		unsigned int key, next, *prev = NULL;
		struct hist h;
		while (bpf_map_get_next_key(fd, prev, &next) == 0) {
			if (bpf_map_lookup_elem(fd, &next, &h) == 0) {
				printf("key = %u\n", next);
				print_log2_hist(h.slots, MAX_SLOTS, "bytes");
				printf("\n");
			}
			key = next;
			prev = &key;
		}
		/* clear for the next interval, as libbpf-tools do */
		prev = NULL;
		while (bpf_map_get_next_key(fd, NULL, &next) == 0 && bpf_map_delete_elem(fd, &next) == 0)
			;
		fflush(stdout);
		if (count > 0)
			count--;
	}
	bpf_object__close(obj);
	return 0;
}
