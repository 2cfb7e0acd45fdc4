/*
 * A caller written for 0.1.0 and compiled against 0.1.0's header (Tests/fixtures/v0.1.0/adamcore.h), run against
 * today's library: every call it makes must behave as it did. Prints "N passed, M failed".
 */
#include <adamcore.h>
#include <stdio.h>
#include <string.h>

static int passed, failed;
#define CHECK(cond, what) do { if (cond) passed++; else { failed++; printf("FAIL %s\n", what); } } while (0)

int main(void) {
    CHECK(ADAMCORE_VERSION_NUMBER == 100, "compiled against 0.1.0's header");
    CHECK(adamcore_version_number() >= 100, "runs against a later library");
    adamcore_config c;
    CHECK(sizeof c == 104 && adamcore_config_init(&c, ADAMCORE_ADAM) == ADAMCORE_OK && c.struct_size == 104, "init");
    c.lr = 0.1;
    float p[5] = {1, 2, 3, 4, 5}, g[5] = {1, -1, 1, -1, 1}, m[5] = {0}, v[5] = {0};
    float q[5], m2[5] = {0}, v2[5] = {0};
    memcpy(q, p, sizeof p);
    adamcore_optimizer *opt;
    CHECK(adamcore_optimizer_create(&c, &opt) == ADAMCORE_OK, "create");
    CHECK(adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT32, q, g, 5, NULL, 0, NULL) == ADAMCORE_OK, "add");
    for (int t = 1; t <= 3; t++) {
        CHECK(adamcore_adam_step_f32(&c, t, 5, p, g, m, v, NULL) == ADAMCORE_OK, "stateless step");
        adamcore_step_options o;
        CHECK(adamcore_step_options_init(&o) == ADAMCORE_OK && o.struct_size == 16, "options init");
        CHECK(adamcore_optimizer_step_with_options(opt, NULL, 1, &o) == ADAMCORE_OK, "object step");
    }
    CHECK(memcmp(p, q, sizeof p) == 0, "object and stateless agree bit for bit");
    adamcore_config back;
    back.struct_size = sizeof back;
    CHECK(adamcore_optimizer_get_config(opt, 0, &back) == ADAMCORE_OK && back.lr == 0.1, "get_config");
    int64_t step = 0;
    CHECK(adamcore_optimizer_get_step(opt, &step) == ADAMCORE_OK && step == 3, "step count");
    c.struct_size = 8;
    CHECK(adamcore_config_validate(&c) == ADAMCORE_E_CONFIG_SIZE, "0.1.0's status name still means a bad size");
    (void)m2; (void)v2;
    adamcore_optimizer_destroy(opt);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
