// SPDX-License-Identifier: GPL-2.0
/* Globals of every type edge-ecli turns into a flag, for the flags fuzz target. Built by
 * fuzz/run.sh: clang-19 -g -O2 -target bpf -c types.bpf.c -o types.bpf.o (committed). */
typedef unsigned long long u64;
enum mode { MODE_A, MODE_B = 5, MODE_C = -1 };
const volatile char c8 = 0;
const volatile signed char s8 = -1;
const volatile unsigned char u8v = 1;
const volatile short s16 = 0;
const volatile unsigned short u16v = 0;
const volatile int s32 = 0;
const volatile unsigned int u32v = 0;
const volatile long s64 = 0;
const volatile unsigned long u64a = 0;
const volatile long long sll = 0;
const volatile u64 u64b = 0;
const volatile _Bool flag = 0;
const volatile _Bool on_by_default = 1;
const volatile float f32 = 1.5f;
const volatile double f64 = 2.5;
const volatile enum mode mode = MODE_B;
const volatile char name[16] = "edge";
volatile int in_bss;
int in_data = 7;

__attribute__((section("tracepoint/syscalls/sys_enter_getppid"), used)) int use_them(void *ctx)
{
	return c8 + s8 + u8v + s16 + u16v + s32 + u32v + s64 + u64a + sll + u64b + flag +
	       on_by_default + *(const volatile int *)&f32 + *(const volatile int *)&f64 + mode + name[0] + in_bss + in_data;
}

char LICENSE[] __attribute__((section("license"), used)) = "GPL";
