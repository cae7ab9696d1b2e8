/*
 * munmap_storm: a small workload that makes the kernel send TLB shootdown IPIs.
 *
 * One "toucher" thread per other CPU, pinned there, keeps reading a shared page so the
 * process's mm stays loaded (not lazy) on that CPU.  The main thread, pinned to CPU 0,
 * loops: mmap N pages, write each, then munmap or mprotect them.  Both unmap and
 * permission changes of pages other CPUs may cache force flush_tlb_mm_range() to IPI
 * every CPU running this mm, i.e. smp_call_function_many_cond() with flush_tlb_func.
 *
 * Usage: munmap_storm [seconds=1.0] [pages=4] [sleep_every=0] [period_us=0]
 *   sleep_every > 0 makes each toucher sleep 50 us every that many iterations of its
 *   loop, so some shootdowns find the target idle/lazy (a more varied trace).
 *   period_us > 0 paces the loop: each flushing call (mprotect, munmap) starts on a grid
 *   period_us apart, the main thread spinning (not sleeping) until its slot, so every page
 *   count sends its IPIs at the same rate and only the pages differ (docs/traces.md,
 *   "Paced captures").  Slots missed because the work took longer are counted and printed.
 *
 * Build: gcc -O2 -pthread -o munmap_storm munmap_storm.c
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static volatile int stop;
static volatile long shared_word;
static long sleep_every;
static double period, next_slot;
static long late;

static double now(void);

/* Spin until the next slot: the sender stays busy, so pacing adds no idle exit on its vCPU. */
static void pace(void)
{
	double t;

	if (period <= 0)
		return;
	t = now();
	if (t > next_slot + period) {
		late++;
		next_slot = t;
	}
	while ((t = now()) < next_slot)
		;
	next_slot += period;
}

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		perror("sched_setaffinity");
}

static void *toucher(void *arg)
{
	long i = 0;

	pin((int)(long)arg);
	while (!stop) {
		(void)shared_word; /* keep this mm's TLB entries live here */
		if (sleep_every > 0 && ++i % sleep_every == 0)
			usleep(50);
	}
	return NULL;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 1.0;
	long pages = argc > 2 ? atol(argv[2]) : 4;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	long page = sysconf(_SC_PAGESIZE);
	pthread_t *threads = calloc(ncpu, sizeof(*threads));
	long iters = 0;
	double end;

	sleep_every = argc > 3 ? atol(argv[3]) : 0;
	period = argc > 4 ? atof(argv[4]) * 1e-6 : 0;
	pin(0);
	for (long c = 1; c < ncpu; c++)
		pthread_create(&threads[c], NULL, toucher, (void *)c);
	usleep(10000); /* let the touchers reach their CPUs */
	end = now() + seconds;
	next_slot = now();
	while (now() < end) {
		char *p = mmap(NULL, pages * page, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
		for (long i = 0; i < pages; i++)
			p[i * page] = (char)i;
		if (iters & 1) {
			pace();
			mprotect(p, pages * page, PROT_READ); /* flush without freeing */
		}
		pace();
		munmap(p, pages * page);
		iters++;
	}
	stop = 1;
	for (long c = 1; c < ncpu; c++)
		pthread_join(threads[c], NULL);
	printf("munmap_storm: %ld iterations in %.2f s on %ld CPUs\n", iters, seconds, ncpu);
	if (period > 0)
		printf("munmap_storm: paced at %.0f us per flush, %ld slots missed\n", period * 1e6, late);
	return 0;
}
