/* The CPU's float32 peak: fused multiply-adds on registers only, one thread per core.

   No GEMM can beat this number, so it bounds what any exact (float32) forward pass
   can reach; benchmarks/README.md compares ours and the peers' GFLOP/s with it.

       gcc -O3 -march=native -fopenmp benchmarks/fma_peak.c -o /tmp/fma_peak && /tmp/fma_peak

   Twelve independent accumulators cover the FMA latency (4 cycles) times the number
   of FMA pipes (2) on current x86 cores, so the loop is bound by FMA throughput. */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <time.h>

#define CHAINS 12
#define STEPS 200000000L

#ifdef __AVX512F__ /* 16 float lanes per register */
typedef __m512 vec;
#define LANES 16
#define splat _mm512_set1_ps
#define fmadd _mm512_fmadd_ps
#define reduce _mm512_reduce_add_ps
#else /* AVX2: 8 lanes */
typedef __m256 vec;
#define LANES 8
#define splat _mm256_set1_ps
#define fmadd _mm256_fmadd_ps
static float reduce(vec v) {
    float x[8];
    _mm256_storeu_ps(x, v);
    return x[0] + x[1] + x[2] + x[3] + x[4] + x[5] + x[6] + x[7];
}
#endif

int main(void) {
    double total = 0.0;
#pragma omp parallel reduction(+ : total)
    {
        vec acc[CHAINS];
        const vec scale = splat(1.0000001f), shift = splat(1e-7f);
        for (int i = 0; i < CHAINS; i++) acc[i] = splat((float)i);
        struct timespec start, end;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (long step = 0; step < STEPS; step++)
            for (int i = 0; i < CHAINS; i++) acc[i] = fmadd(acc[i], scale, shift);
        clock_gettime(CLOCK_MONOTONIC, &end);
        float sink = 0.0f;  /* keeps the loop from being optimised away */
        for (int i = 0; i < CHAINS; i++) sink += reduce(acc[i]);
        double seconds = (end.tv_sec - start.tv_sec) + 1e-9 * (end.tv_nsec - start.tv_nsec);
        double gflops = STEPS * CHAINS * LANES * 2 / seconds / 1e9; /* 2 FLOP per lane */
        printf("core %d: %.1f GFLOP/s%s\n", omp_get_thread_num(), gflops, sink == 0 ? " " : "");
        total += gflops;
    }
    printf("float32 FMA peak, all cores: %.0f GFLOP/s\n", total);
    return 0;
}
