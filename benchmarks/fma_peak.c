/* The CPU's peaks per accuracy tier: multiply-adds on registers only, one thread per core.

   No GEMM can beat these numbers, so they bound what any forward pass of a tier can
   reach; benchmarks/README.md compares ours and the peers' rates with them:

   - float32: fused multiply-adds (vfmadd, AVX-512 or AVX2), 2 FLOP per lane;
   - bfloat16: vdpbf16ps (AVX512_BF16), two bf16 products summed into each float32
     lane, 4 FLOP per lane;
   - int8: vpdpbusd (AVX512_VNNI), four u8 x s8 products summed into each int32 lane,
     8 OP per lane.

   A tier whose instruction this CPU (or this compiler) lacks prints "not supported".

       gcc -O3 -march=native -fopenmp benchmarks/fma_peak.c -o /tmp/fma_peak && /tmp/fma_peak

   Twelve independent accumulators cover the latency (4 cycles) times the number of
   pipes (2) on current x86 cores, so each loop is bound by throughput. */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <time.h>

#define CHAINS 12
#define STEPS 200000000L

static double seconds_since(const struct timespec *start) {
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    return (end.tv_sec - start->tv_sec) + 1e-9 * (end.tv_nsec - start->tv_nsec);
}

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

/* GFLOP/s of one thread; `sink` keeps the loop from being optimised away. */
static double float32_rate(float *sink) {
    vec acc[CHAINS];
    const vec scale = splat(1.0000001f), shift = splat(1e-7f);
    for (int i = 0; i < CHAINS; i++) acc[i] = splat((float)i);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long step = 0; step < STEPS; step++)
        for (int i = 0; i < CHAINS; i++) acc[i] = fmadd(acc[i], scale, shift);
    double seconds = seconds_since(&start);
    for (int i = 0; i < CHAINS; i++) *sink += reduce(acc[i]);
    return STEPS * CHAINS * LANES * 2 / seconds / 1e9;
}

#ifdef __AVX512BF16__
static double bfloat16_rate(float *sink) {
    __m512 acc[CHAINS];
    const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80); /* bf16 1.0 */
    const __m512bh b = (__m512bh)_mm512_set1_epi16(0x3380); /* bf16 ~6e-8 */
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long step = 0; step < STEPS; step++)
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
    double seconds = seconds_since(&start);
    for (int i = 0; i < CHAINS; i++) *sink += _mm512_reduce_add_ps(acc[i]);
    return STEPS * CHAINS * 16 * 4 / seconds / 1e9; /* 2 products + 2 adds per lane */
}
#endif

#ifdef __AVX512VNNI__
static double int8_rate(float *sink) {
    __m512i acc[CHAINS];
    const __m512i a = _mm512_set1_epi8(1), b = _mm512_set1_epi8(-1); /* u8 x s8 */
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_epi32(i);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long step = 0; step < STEPS; step++)
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_dpbusd_epi32(acc[i], a, b);
    double seconds = seconds_since(&start);
    for (int i = 0; i < CHAINS; i++) *sink += (float)_mm512_reduce_add_epi32(acc[i]);
    return STEPS * CHAINS * 16 * 8 / seconds / 1e9; /* 4 products + 4 adds per lane */
}
#endif

/* Runs `rate` on every core at once and prints each core's and the sum. */
static void peak(const char *tier, const char *unit, double (*rate)(float *)) {
    double total = 0.0;
#pragma omp parallel reduction(+ : total)
    {
        float sink = 0.0f;
        double r = rate(&sink);
        printf("core %d: %.1f %s%s\n", omp_get_thread_num(), r, unit, sink == 0 ? " " : "");
        total += r;
    }
    printf("%s peak, all cores: %.0f %s\n", tier, total, unit);
}

int main(void) {
    peak("float32", "GFLOP/s", float32_rate);
#ifdef __AVX512BF16__
    peak("bfloat16", "GFLOP/s", bfloat16_rate);
#else
    printf("bfloat16 peak, all cores: not supported (no AVX512_BF16)\n");
#endif
#ifdef __AVX512VNNI__
    peak("int8", "GOP/s", int8_rate);
#else
    printf("int8 peak, all cores: not supported (no AVX512_VNNI)\n");
#endif
    return 0;
}
