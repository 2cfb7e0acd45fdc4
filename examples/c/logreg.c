/*
 * Logistic regression on generated data, trained with Adam, AMSGrad and AdaFix through adamcore's C API.
 * Build like a user would:  cc logreg.c $(pkg-config --cflags --libs adamcore) -lm
 *
 * The model has two tensors (weights and bias) registered with one optimizer object, so AdaFix's gate is one
 * decision over both. AdaFix runs its exact form: after each step the same minibatch's gradient at the new point
 * is handed to adamcore_optimizer_adafix_observe, which updates the Lipschitz estimate L.
 */
#include <adamcore.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FEATURES = 20, SAMPLES = 2000, BATCH = 100, EPOCHS = 40 };

static float x[SAMPLES][FEATURES];
static float y[SAMPLES];

/* A fixed linear rule with label noise; a tiny deterministic generator so every run prints the same table. */
static unsigned long long rng_state = 0x9E3779B97F4A7C15ull;
static double uniform(void) {
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static double normal(void) {
    double u = uniform() + 1e-12, v = uniform();
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static void make_data(void) {
    float truth[FEATURES];
    for (int j = 0; j < FEATURES; j++) truth[j] = (float)normal();
    for (int i = 0; i < SAMPLES; i++) {
        double z = 0.5;
        for (int j = 0; j < FEATURES; j++) { x[i][j] = (float)normal(); z += truth[j] * x[i][j]; }
        y[i] = (z + 0.5 * normal()) > 0 ? 1.0f : 0.0f;
    }
}

/* Mean logistic loss over rows [first, first + rows) and its gradient. */
static double loss_and_grad(const float *w, const float *b, int first, int rows, float *gw, float *gb) {
    double loss = 0, dw[FEATURES] = {0}, db = 0;
    for (int i = first; i < first + rows; i++) {
        double z = b[0];
        for (int j = 0; j < FEATURES; j++) z += w[j] * x[i][j];
        double p = 1.0 / (1.0 + exp(-z));
        loss += (z > 0 ? z : 0) - z * y[i] + log1p(exp(-fabs(z)));
        for (int j = 0; j < FEATURES; j++) dw[j] += (p - y[i]) * x[i][j];
        db += p - y[i];
    }
    if (gw) {
        for (int j = 0; j < FEATURES; j++) gw[j] = (float)(dw[j] / rows);
        gb[0] = (float)(db / rows);
    }
    return loss / rows;
}

#define CHECK(call)                                                                                      \
    do {                                                                                                 \
        int status_ = (call);                                                                            \
        if (status_ != ADAMCORE_OK) {                                                                    \
            fprintf(stderr, "%s failed: %s (%s)\n", #call, adamcore_status_name(status_),                \
                    adamcore_strerror(status_));                                                         \
            exit(1);                                                                                     \
        }                                                                                                \
    } while (0)

static void train(const char *name, int algorithm, unsigned flags) {
    float w[FEATURES] = {0}, b[1] = {0}, gw[FEATURES], gb[1], gw_new[FEATURES], gb_new[1];
    adamcore_config config;
    CHECK(ADAMCORE_CONFIG_INIT(&config, algorithm));
    config.lr = 0.05;
    config.flags |= flags;

    adamcore_optimizer *opt = NULL;
    CHECK(adamcore_optimizer_create(&config, &opt));
    /* Register the tensors with their gradient buffers; the library allocates the state. */
    CHECK(adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT32, w, gw, FEATURES, NULL, 0, NULL));
    CHECK(adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT32, b, gb, 1, NULL, 0, NULL));
    const void *new_grads[2] = {gw_new, gb_new};

    int frozen_steps = 0, steps = 0;
    printf("%-8s", name);
    for (int epoch = 1; epoch <= EPOCHS; epoch++) {
        for (int first = 0; first < SAMPLES; first += BATCH) {
            loss_and_grad(w, b, first, BATCH, gw, gb);
            CHECK(adamcore_optimizer_step(opt, NULL, 2));
            steps++;
            if (algorithm == ADAMCORE_ADAFIX) {
                int updated;
                CHECK(adamcore_optimizer_adafix_v_updated(opt, &updated));
                frozen_steps += !updated;
                loss_and_grad(w, b, first, BATCH, gw_new, gb_new); /* same minibatch, new point */
                CHECK(adamcore_optimizer_adafix_observe(opt, NULL, new_grads, 2));
            }
        }
        if (epoch == 1 || epoch % 10 == 0) printf("  %8.5f", loss_and_grad(w, b, 0, SAMPLES, NULL, NULL));
    }
    if (algorithm == ADAMCORE_ADAFIX) {
        double lipschitz;
        CHECK(adamcore_optimizer_get_lipschitz(opt, &lipschitz));
        printf("   (L = %.3f; v held fixed on %d of %d steps)", lipschitz, frozen_steps, steps);
    }
    printf("\n");
    CHECK(adamcore_optimizer_destroy(opt));
}

int main(void) {
    make_data();
    printf("adamcore %s (kernels: %s), logistic regression, %d samples x %d features, batch %d, lr 0.05\n",
           adamcore_version_string(),
           adamcore_active_isa() == ADAMCORE_ISA_AVX512   ? "AVX-512"
           : adamcore_active_isa() == ADAMCORE_ISA_AVX2_FMA ? "AVX2+FMA"
                                                          : "baseline",
           SAMPLES, FEATURES, BATCH);
    printf("full-data loss after epoch   1          10        20        30        40\n");
    train("Adam", ADAMCORE_ADAM, 0);
    train("AMSGrad", ADAMCORE_ADAM, ADAMCORE_FLAG_AMSGRAD);
    train("AdaFix", ADAMCORE_ADAFIX, 0);
    return 0;
}
