/* The alert detector: each alert fires when its condition starts, once, and
 * the active counts follow the conditions. */
#include "test_util.h"

#include "moe/moe.h"
#include "obs/alerts.h"

#include <math.h>
#include <string.h>

static moe_obs_config config(void) {
    moe_run_config c;
    moe_config_defaults(&c);
    moe_obs_config o = c.obs;
    o.loss_window = 5;
    o.spike_sigma = 3;
    o.starve_ratio = 0.5f; /* with E = 4: starved below 12.5% */
    o.starve_steps = 3;
    o.imbalance_max = 0.2f;
    o.imbalance_window = 1;
    return o;
}

static void test_starved_after_n_steps_once(void **state) {
    (void)state;
    moe_obs_config oc = config();
    alert_state a;
    assert_int_equal(alerts_init(&a, &oc, 2, 4), MOE_OK);
    alert_event ev[8];
    const double starving[4] = {0.30, 0.30, 0.30, 0.10}; /* expert 3 under 12.5% */
    const double fine[4] = {0.25, 0.25, 0.25, 0.25};
    assert_int_equal(alerts_layer(&a, 1, 0, 1, starving, 0.0, 1.0, ev, 8), 0);
    assert_int_equal(alerts_layer(&a, 2, 0, 1, starving, 0.0, 1.0, ev, 8), 0);
    assert_int_equal(a.active[ALERT_STARVED], 0);
    assert_int_equal(alerts_layer(&a, 3, 0, 1, starving, 0.0, 1.0, ev, 8), 1);
    assert_int_equal(ev[0].kind, ALERT_STARVED);
    assert_int_equal(ev[0].layer, 1);
    assert_int_equal(ev[0].expert, 3);
    assert_float_equal(ev[0].threshold, 0.125, 1e-9);
    assert_non_null(strstr(ev[0].message, "layer 1 expert 3 starved"));
    assert_int_equal(a.active[ALERT_STARVED], 1);
    /* still starved: no new event, still active */
    assert_int_equal(alerts_layer(&a, 4, 0, 1, starving, 0.0, 1.0, ev, 8), 0);
    assert_int_equal(a.active[ALERT_STARVED], 1);
    /* recovered: inactive; starving again counts from zero */
    assert_int_equal(alerts_layer(&a, 5, 0, 1, fine, 0.0, 1.0, ev, 8), 0);
    assert_int_equal(a.active[ALERT_STARVED], 0);
    assert_int_equal(alerts_layer(&a, 6, 0, 1, starving, 0.0, 1.0, ev, 8), 0);
    alerts_free(&a);
}

static void test_imbalance_is_edge_triggered(void **state) {
    (void)state;
    moe_obs_config oc = config();
    alert_state a;
    assert_int_equal(alerts_init(&a, &oc, 1, 4), MOE_OK);
    alert_event ev[8];
    const double s[4] = {0.25, 0.25, 0.25, 0.25};
    assert_int_equal(alerts_layer(&a, 1, 0, 0, s, 0.19, 1.0, ev, 8), 0);
    assert_int_equal(alerts_layer(&a, 2, 0, 0, s, 0.21, 1.0, ev, 8), 1);
    assert_int_equal(ev[0].kind, ALERT_IMBALANCE);
    assert_float_equal(ev[0].value, 0.21, 1e-12);
    assert_true(ev[0].threshold == 0.2); /* the decimal configured, not float(0.2) */
    assert_int_equal(a.active[ALERT_IMBALANCE], 1);
    assert_int_equal(alerts_layer(&a, 3, 0, 0, s, 0.50, 1.0, ev, 8), 0);
    assert_int_equal(alerts_layer(&a, 4, 0, 0, s, 0.19, 1.0, ev, 8), 0);
    assert_int_equal(a.active[ALERT_IMBALANCE], 1); /* under the bar, not under 0.9 x */
    assert_int_equal(alerts_layer(&a, 5, 0, 0, s, 0.21, 1.0, ev, 8), 0);
    assert_int_equal(alerts_layer(&a, 6, 0, 0, s, 0.17, 1.0, ev, 8), 0);
    assert_int_equal(a.active[ALERT_IMBALANCE], 0);
    assert_int_equal(alerts_layer(&a, 7, 0, 0, s, 0.30, 1.0, ev, 8), 1);
    alerts_free(&a);
}

/* Over a window the mean decides: single noisy steps over the bar do not
 * alert, a mean over it does, once the window is full; layers keep their
 * own windows. */
static void test_imbalance_judges_the_window_mean(void **state) {
    (void)state;
    moe_obs_config oc = config();
    oc.imbalance_window = 4;
    alert_state a;
    assert_int_equal(alerts_init(&a, &oc, 2, 4), MOE_OK);
    alert_event ev[8];
    const double s[4] = {0.25, 0.25, 0.25, 0.25};
    /* window means: 0.175 at steps 4-6, 0.275 at step 7 */
    const double layer0[8] = {0.1, 0.25, 0.1, 0.25, 0.1, 0.25, 0.5, 0.5};
    int fired_at = -1;
    for (int t = 0; t < 8; t++) {
        int n0 = alerts_layer(&a, t + 1, 0, 0, s, layer0[t], 1.0, ev, 8);
        if (n0) {
            assert_int_equal(ev[0].layer, 0);
            assert_float_equal(ev[0].value, (0.25 + 0.1 + 0.25 + 0.5) / 4, 1e-12);
            fired_at = t;
        }
        assert_int_equal(alerts_layer(&a, t + 1, 1, 1, s, 0.05, 1.0, ev, 8), 0);
    }
    assert_int_equal(fired_at, 6);
    assert_int_equal(a.active[ALERT_IMBALANCE], 1);
    alerts_free(&a);
}

static void test_router_without_gradient(void **state) {
    (void)state;
    moe_obs_config oc = config();
    alert_state a;
    assert_int_equal(alerts_init(&a, &oc, 2, 4), MOE_OK);
    alert_event ev[8];
    const double s[4] = {0.25, 0.25, 0.25, 0.25};
    assert_int_equal(alerts_layer(&a, 1, 1, 3, s, 0.0, 1e-9, ev, 8), 0); /* tiny is not zero */
    assert_int_equal(alerts_layer(&a, 2, 1, 3, s, 0.0, 0.0, ev, 8), 1);
    assert_int_equal(ev[0].kind, ALERT_NO_ROUTER_GRAD);
    assert_int_equal(ev[0].layer, 3);
    assert_non_null(strstr(ev[0].message, "layer 3 router received no gradient"));
    assert_int_equal(a.active[ALERT_NO_ROUTER_GRAD], 1);
    alerts_free(&a);
}

static void test_loss_spike_against_the_window(void **state) {
    (void)state;
    moe_obs_config oc = config(); /* window 5, 3 sigma */
    alert_state a;
    assert_int_equal(alerts_init(&a, &oc, 0, 4), MOE_OK);
    alert_event ev[4];
    const double losses[5] = {2.0, 2.1, 1.9, 2.0, 2.0}; /* mean 2, sd 0.0707 */
    for (int i = 0; i < 5; i++) assert_int_equal(alerts_loss(&a, i + 1, losses[i], 1, ev, 4), 0);
    assert_float_equal(alerts_loss_variance(&a), 0.005, 1e-12);
    /* 2.2 is 2.8 sd over the mean: no spike; 2.5 is: one event */
    assert_int_equal(alerts_loss(&a, 6, 2.2, 1, ev, 4), 0);
    assert_int_equal(alerts_loss(&a, 7, 4.0, 1, ev, 4), 1);
    assert_int_equal(ev[0].kind, ALERT_LOSS_SPIKE);
    assert_float_equal(ev[0].value, 4.0, 0);
    assert_int_equal(a.active[ALERT_LOSS_SPIKE], 1);
    assert_non_null(strstr(ev[0].message, "loss spike"));
    alerts_free(&a);
}

static void test_no_spike_before_the_window_fills(void **state) {
    (void)state;
    moe_obs_config oc = config();
    alert_state a;
    assert_int_equal(alerts_init(&a, &oc, 0, 4), MOE_OK);
    alert_event ev[4];
    assert_int_equal(alerts_loss(&a, 1, 2.0, 1, ev, 4), 0);
    assert_int_equal(alerts_loss(&a, 2, 2.1, 1, ev, 4), 0);
    assert_int_equal(alerts_loss(&a, 3, 100.0, 1, ev, 4), 0);
    alerts_free(&a);
}

static void test_nonfinite(void **state) {
    (void)state;
    moe_obs_config oc = config();
    alert_state a;
    assert_int_equal(alerts_init(&a, &oc, 0, 4), MOE_OK);
    alert_event ev[4];
    assert_int_equal(alerts_loss(&a, 9, NAN, 1, ev, 4), 1);
    assert_int_equal(ev[0].kind, ALERT_NONFINITE);
    assert_non_null(strstr(ev[0].message, "training loss is nan"));
    assert_int_equal(alerts_loss(&a, 10, 2.0, INFINITY, ev, 4), 1);
    assert_non_null(strstr(ev[0].message, "gradient norm is inf"));
    assert_string_equal(alert_names[ALERT_NONFINITE], "nonfinite");
    alerts_free(&a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_starved_after_n_steps_once),
        cmocka_unit_test(test_imbalance_is_edge_triggered),
        cmocka_unit_test(test_imbalance_judges_the_window_mean),
        cmocka_unit_test(test_router_without_gradient),
        cmocka_unit_test(test_loss_spike_against_the_window),
        cmocka_unit_test(test_no_spike_before_the_window_fills),
        cmocka_unit_test(test_nonfinite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
