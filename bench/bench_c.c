/*
 * C-side benchmark: adamcore (stateless call and optimizer object) interleaved with
 *   - a roofline kernel: the same memory traffic as Adam (read p, g, m, v; write p, m, v: 28 B/element in float32)
 *     with trivial arithmetic, so it runs at the machine's memory (or cache) speed;
 *   - a C reference Adam kernel compiled by gcc -O3 -march=native -fno-math-errno (OpenMP for 2 threads).
 * Each contender runs a fixed number of repetitions per round, rounds alternate between contenders, and the best
 * round counts; a 5 ms pause before each contender lets the previous one's spinning threads sleep. Output: one line per (algorithm, size, threads) in a simple key=value form that bench/report.py
 * turns into tables. Usage: bench_c [quick]
 */
#include <adamcore.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void roofline(size_t n, float *restrict p, const float *restrict g, float *restrict m, float *restrict v) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = g[i];
        m[i] = m[i] + x;
        v[i] = v[i] + x;
        p[i] = p[i] + x;
    }
}

static void c_adam(size_t n, float *restrict p, const float *restrict g, float *restrict m, float *restrict v,
                   float step_size, float inv_bc2, float b1, float b2, float eps) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = b1 * m[i] + (1 - b1) * gi;
        float vi = b2 * v[i] + (1 - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= step_size * mi / (sqrtf(vi * inv_bc2) + eps);
    }
}

static void c_amsgrad(size_t n, float *restrict p, const float *restrict g, float *restrict m, float *restrict v,
                      float *restrict vmax, float step_size, float inv_bc2, float b1, float b2, float eps) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = b1 * m[i] + (1 - b1) * gi;
        float vi = b2 * v[i] + (1 - b2) * gi * gi;
        float mx = vmax[i] > vi ? vmax[i] : vi;
        m[i] = mi;
        v[i] = vi;
        vmax[i] = mx;
        p[i] -= step_size * mi / (sqrtf(mx * inv_bc2) + eps);
    }
}

static float *buffer(size_t n, float value) {
    float *b = aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64);
    if (!b) { fprintf(stderr, "out of memory\n"); exit(1); }
    for (size_t i = 0; i < n; i++) b[i] = value == 0 ? 0 : value * sinf((float)i);
    return b;
}

#define CHECK(call)                                                                                                  \
    do {                                                                                                             \
        int s_ = (call);                                                                                             \
        if (s_) { fprintf(stderr, "%s: %s\n", #call, adamcore_status_name(s_)); exit(1); }                           \
    } while (0)

enum { CONTENDERS = 5 };
static const char *names[CONTENDERS] = {"adamcore", "adamcore_object", "roofline", "c_gcc", "adamcore_object_stats"};

/* One size: `tensors` tensors of `per` elements each (tensors > 1 only for the object, the layout case). */
static void bench(const char *algorithm, size_t tensors, size_t per, int threads, double budget) {
    size_t n = tensors * per;
    int ams = strcmp(algorithm, "amsgrad") == 0, adamw = strcmp(algorithm, "adamw") == 0;
    float *p = buffer(n, 1), *g = buffer(n, 0.1f), *m = buffer(n, 0), *v = buffer(n, 0), *vmax = buffer(n, 0);
    adamcore_config c;
    CHECK(adamcore_config_init(&c, ADAMCORE_ADAM));
    if (ams) c.flags |= ADAMCORE_FLAG_AMSGRAD;
    if (adamw) { c.flags |= ADAMCORE_FLAG_DECOUPLED_WEIGHT_DECAY; c.weight_decay = 1e-2; }
    adamcore_optimizer *opt;
    CHECK(adamcore_optimizer_create(&c, &opt));
    float *op = buffer(n, 1), *og = buffer(n, 0.1f);
    for (size_t t = 0; t < tensors; t++)
        CHECK(adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT32, op + t * per, og + t * per, per, NULL, 0, NULL));
    /* The same optimizer with in-pass statistics on (issue 7's overhead figure). */
    adamcore_optimizer *measured;
    CHECK(adamcore_optimizer_create(&c, &measured));
    float *sp = buffer(n, 1), *sg = buffer(n, 0.1f);
    for (size_t t = 0; t < tensors; t++)
        CHECK(adamcore_optimizer_add_tensor(measured, 0, ADAMCORE_FLOAT32, sp + t * per, sg + t * per, per, NULL, 0, NULL));
    CHECK(adamcore_optimizer_set_stats(measured, 1));
    CHECK(adamcore_set_num_threads(threads));
    omp_set_num_threads(threads);

    /* Repetitions per round: about budget/10 seconds of Adam at ~0.5 ns/element, at least one. */
    size_t reps = (size_t)(budget / 10 / (n * 0.5e-9));
    if (reps < 1) reps = 1;
    if (reps > 200000) reps = 200000;
    double best[CONTENDERS];
    for (int k = 0; k < CONTENDERS; k++) best[k] = 1e30;
    int64_t step = 0;
    for (int round = 0; round < 7; round++) {
        for (int k = 0; k < CONTENDERS; k++) {
            if (tensors > 1 && k != 1 && k != 4) continue; /* the many-tensor layout is the object's case */
            /* Let the previous contender's spinning threads (OpenMP's, the pool's) go to sleep first. */
            nanosleep(&(struct timespec){0, 5000000}, NULL);
            double t0 = now();
            for (size_t r = 0; r < reps; r++) {
                step++;
                switch (k) {
                case 0:
                    CHECK(ams ? adamcore_adam_step_f32(&c, step, n, p, g, m, v, vmax)
                              : adamcore_adam_step_f32(&c, step, n, p, g, m, v, NULL));
                    break;
                case 1: CHECK(adamcore_optimizer_step(opt, NULL, tensors)); break;
                case 4: CHECK(adamcore_optimizer_step(measured, NULL, tensors)); break;
                case 2: roofline(n, p, g, m, v); break;
                case 3:
                    if (ams) c_amsgrad(n, p, g, m, v, vmax, 1e-3f / 0.1f, 1000.0f, 0.9f, 0.999f, 1e-8f);
                    else c_adam(n, p, g, m, v, 1e-3f / 0.1f, 1000.0f, 0.9f, 0.999f, 1e-8f);
                    break;
                }
            }
            double dt = (now() - t0) / reps;
            if (dt < best[k]) best[k] = dt;
        }
    }
    for (int k = 0; k < CONTENDERS; k++) {
        if (best[k] >= 1e30) continue;
        printf("side=c algorithm=%s contender=%s tensors=%zu elements=%zu threads=%d ns_per_element=%.4f "
               "us_per_call=%.3f\n", algorithm, names[k], tensors, n, threads, best[k] * 1e9 / n, best[k] * 1e6);
    }
    fflush(stdout);
    adamcore_optimizer_destroy(opt);
    adamcore_optimizer_destroy(measured);
    free(p); free(g); free(m); free(v); free(vmax); free(op); free(og); free(sp); free(sg);
}

int main(int argc, char **argv) {
    int quick = argc > 1 && strcmp(argv[1], "quick") == 0;
    double budget = quick ? 0.02 : 0.25;
    size_t sizes[] = {4096, 65536, 1 << 20, 1 << 24, 1 << 26};
    int nsizes = quick ? 3 : 5;
    printf("# adamcore %s, kernels %s, %d CPUs available\n", adamcore_version_string(),
           adamcore_active_isa() == ADAMCORE_ISA_AVX2_FMA ? "AVX2+FMA" : "baseline", omp_get_num_procs());
    const char *algorithms[] = {"adam", "amsgrad", "adamw"};
    for (int a = 0; a < (quick ? 1 : 3); a++) {
        for (int threads = 1; threads <= 2; threads++) {
            for (int s = 0; s < nsizes; s++) {
                if (a > 0 && sizes[s] > (1u << 24)) continue; /* 64M once, for Adam */
                bench(algorithms[a], 1, sizes[s], threads, budget);
            }
            bench(algorithms[a], 1000, 64, threads, budget);
        }
    }
    return 0;
}
