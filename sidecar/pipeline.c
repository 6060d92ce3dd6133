/*
 * The pipeline's lifecycle: setting up the stages (the chain, the outputs, the
 * inputs with their multiline rules, the spool and the admin endpoint),
 * running the loop, and taking it all down. The stages in between have files
 * of their own, listed in pipeline_internal.h: sources in input/source.c, the
 * bounded buffer in buffer/queue.c, delivery and retries in output/dispatch.c.
 *
 * Shutdown drains: inputs stop, what was read is filtered and delivered,
 * outputs flush, and only then does the loop end. No output blocks the loop,
 * so the grace period (shutdown_timeout) holds whatever the sinks do and
 * /metrics answers meanwhile. A drain that cannot finish within it ends with
 * exit status 1: the outputs hand back what they hold, and every record not
 * delivered is spooled, left for a tail input to read again, or counted as
 * dropped (reason shutdown), with one line in the log saying how many.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <ev.h>

#include "ack.h"
#include "admin.h"
#include "logveil/chain.h"
#include "logveil/log.h"
#include "logveil/metrics.h"
#include "multiline.h"
#include "pipeline.h"
#include "pipeline_internal.h"
#include "registry.h"

/* ---- draining ---------------------------------------------------------------------- */

void lv_pipeline_maybe_finish(struct lv_pipeline *p)
{
    if (!p->stopping || p->ndone < p->ninputs || p->batches_out > 0)
        return;
    for (size_t i = 0; i < p->noutputs; i++)
        if (p->outputs[i].type->flush(&p->outputs[i]) < 0)
            p->exit_code = 1;
    ev_break(p->loop, EVBREAK_ALL);
}

void lv_pipeline_input_done(struct lv_pipeline *p, struct lv_input *in)
{
    size_t i = lv_pipeline_input_index(p, in);
    if (p->done[i])
        return;
    lv_queue_submit(p);
    p->done[i] = true;
    p->ndone++;
    if (p->ndone == p->ninputs)
        p->stopping = true;
    lv_pipeline_maybe_finish(p);
}

static void on_grace(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct lv_pipeline *p = lv_container_of(w, struct lv_pipeline, grace);
    (void)revents;
    size_t batches = p->batches_out, kept = 0;
    size_t lost = lv_queue_abandon(p, &kept);
    /* Exit 0 when nothing is lost: what was not delivered is in the spool
     * or read again from the checkpoint at the next start. */
    lv_log(lost ? LV_LOG_ERROR : LV_LOG_WARN,
           "shutdown: %zu batches still undelivered after %.0f s: %zu records undelivered, "
           "counted as dropped (reason shutdown); %zu more stay in the spool or are read "
           "again from the checkpoint",
           batches, p->conf->shutdown_timeout, lost, kept);
    if (lost)
        p->exit_code = 1;
    ev_break(loop, EVBREAK_ALL);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct lv_pipeline *p = w->data;
    (void)revents;
    if (ev_is_active(&p->grace)) {
        /* Already draining; starting the grace timer again would re-init
         * an active watcher, which libev forbids. */
        lv_info("signal %d: already draining", w->signum);
        return;
    }
    lv_info("signal %d: draining and stopping", w->signum);
    p->stopping = true;
    for (size_t i = 0; i < p->ninputs; i++)
        if (!p->done[i])
            p->inputs[i].type->stop(&p->inputs[i]);
    lv_queue_spill_retries(p);
    ev_timer_init(&p->grace, on_grace, p->conf->shutdown_timeout, 0.);
    ev_timer_start(loop, &p->grace);
    lv_pipeline_maybe_finish(p);
}

/* ---- lifecycle --------------------------------------------------------------------- */

/* One joining rule per input, before its init opens sources: the input's
 * pattern, or (without a multiline map) PEM private key blocks only. */
static int setup_multiline(struct lv_pipeline *p, size_t i, char *err, size_t errlen)
{
    const struct lv_multiline_conf *mc = &p->conf->inputs[i].multiline;
    char why[300];
    p->rules[i] = lv_multiline_rule_new(mc, p->conf->limits.max_line, why, sizeof why);
    if (!p->rules[i]) {
        snprintf(err, errlen, "input %zu: %s", i, why);
        return -EINVAL;
    }
    return 0;
}

static int setup_inputs(struct lv_pipeline *p, char *err, size_t errlen)
{
    const struct lv_conf *conf = p->conf;
    p->ninputs = conf->ninputs;
    p->inputs = lv_xcalloc(p->ninputs, sizeof *p->inputs);
    p->rules = lv_xcalloc(p->ninputs, sizeof *p->rules);
    p->done = lv_xcalloc(p->ninputs, sizeof *p->done);
    for (size_t i = 0; i < p->ninputs; i++) {
        const struct lv_input_conf *ic = &conf->inputs[i];
        const struct lv_input_type *t = lv_registry_input(ic->kind);
        if (!t) {
            snprintf(err, errlen, "input %zu: this build has no tail input yet", i);
            return -ENOTSUP;
        }
        if (setup_multiline(p, i, err, errlen) < 0)
            return -EINVAL;
        struct lv_input *in = &p->inputs[i];
        *in = (struct lv_input){t, ic, p, p->loop, lv_xcalloc(1, t->ctx_size)};
        int rc = t->init(in);
        if (rc < 0) {
            snprintf(err, errlen, "input %s: cannot start: %s", t->name, strerror(-rc));
            return rc;
        }
    }
    return 0;
}

static int setup_outputs(struct lv_pipeline *p, char *err, size_t errlen)
{
    const struct lv_conf *conf = p->conf;
    p->noutputs = conf->noutputs;
    if (p->noutputs > LV_ACK_MAX_OUTPUTS) {
        snprintf(err, errlen, "%zu outputs: at most %d are supported", p->noutputs,
                 LV_ACK_MAX_OUTPUTS);
        p->noutputs = 0;
        return -EINVAL;
    }
    p->all_outputs = p->noutputs == 32 ? UINT32_MAX : (UINT32_C(1) << p->noutputs) - 1;
    p->outputs = lv_xcalloc(p->noutputs, sizeof *p->outputs);
    p->retry = lv_xcalloc(p->noutputs, sizeof *p->retry);
    p->inflight = lv_xcalloc(p->noutputs, sizeof *p->inflight);
    for (size_t i = 0; i < p->noutputs; i++) {
        const struct lv_output_conf *oc = &conf->outputs[i];
        const struct lv_output_type *t = lv_registry_output(oc->kind);
        struct lv_output *out = &p->outputs[i];
        const char *name = oc->name ? oc->name : t->name;
        *out = (struct lv_output){t, oc, lv_metrics_output(name), p, p->loop,
                                  lv_xcalloc(1, t->ctx_size), 0};
        lv_dispatch_init(p, i);
        int rc = t->init(out);
        if (rc < 0) {
            snprintf(err, errlen, "output %s: cannot start: %s", name, strerror(-rc));
            return rc;
        }
    }
    return 0;
}

struct lv_pipeline *lv_pipeline_new(struct ev_loop *loop, const struct lv_conf *conf, char *err,
                                    size_t errlen)
{
    struct lv_pipeline *p = lv_xcalloc(1, sizeof *p);
    p->loop = loop;
    p->conf = conf;
    p->max_bytes = conf->buffer_max_bytes ? conf->buffer_max_bytes : 64u << 20;
    p->chain = lv_chain_new(conf, err, errlen);
    lv_metrics.config_generation = 1;
    lv_metrics.config_last_reload_ok = 1;
    if (!p->chain || setup_outputs(p, err, errlen) < 0 || setup_inputs(p, err, errlen) < 0 ||
        lv_queue_open_spool(p, err, errlen) < 0)
        goto err;
    if (conf->admin.listen) {
        p->admin =
            lv_admin_start(loop, conf->admin.listen, conf->admin.probe_listen, err, errlen);
        if (!p->admin)
            goto err;
    }
    return p;
err:
    lv_pipeline_free(p);
    return NULL;
}

int lv_pipeline_run(struct lv_pipeline *p)
{
    ev_signal_init(&p->sigterm, on_signal, SIGTERM);
    ev_signal_init(&p->sigint, on_signal, SIGINT);
    p->sigterm.data = p->sigint.data = p;
    ev_signal_start(p->loop, &p->sigterm);
    ev_signal_start(p->loop, &p->sigint);
    ev_unref(p->loop); /* the signal watchers alone do not keep the loop alive */
    ev_unref(p->loop);
    lv_queue_replay_earlier(p);
    for (size_t i = 0; i < p->ninputs; i++)
        p->inputs[i].type->start(&p->inputs[i]);
    if (p->admin)
        lv_admin_set_ready(p->admin, true);
    if (p->ninputs == 0)
        p->stopping = true;
    lv_pipeline_maybe_finish(p);
    if (!(p->stopping && p->batches_out == 0))
        ev_run(p->loop, 0);
    ev_ref(p->loop);
    ev_ref(p->loop);
    ev_signal_stop(p->loop, &p->sigterm);
    ev_signal_stop(p->loop, &p->sigint);
    ev_timer_stop(p->loop, &p->grace);
    return p->exit_code;
}

void lv_pipeline_free(struct lv_pipeline *p)
{
    if (!p)
        return;
    lv_admin_stop(p->admin);
    lv_queue_close_spool(p);
    for (size_t i = 0; p->inputs && i < p->ninputs; i++) {
        if (p->inputs[i].type)
            p->inputs[i].type->destroy(&p->inputs[i]);
        free(p->inputs[i].ctx);
    }
    for (size_t i = 0; i < p->nsources; i++)
        lv_source_close(p->sources[i]);
    for (size_t i = 0; p->rules && i < p->ninputs; i++)
        lv_multiline_rule_free(p->rules[i]);
    for (size_t i = 0; p->outputs && i < p->noutputs; i++) {
        lv_dispatch_free(p, i);
        if (p->outputs[i].type)
            p->outputs[i].type->destroy(&p->outputs[i]);
        free(p->outputs[i].ctx);
    }
    lv_queue_free_batches(p);
    free(p->inputs);
    free(p->rules);
    free(p->done);
    free(p->sources);
    free(p->dirty);
    free(p->outputs);
    free(p->retry);
    free(p->inflight);
    lv_chain_free(p->chain);
    free(p);
}

struct ev_loop *lv_pipeline_loop(const struct lv_pipeline *p)
{
    return p->loop;
}

struct lv_chain *lv_pipeline_chain(const struct lv_pipeline *p)
{
    return p->chain;
}

struct lv_chain *lv_pipeline_swap_chain(struct lv_pipeline *p, struct lv_chain *chain)
{
    struct lv_chain *old = p->chain;
    p->chain = chain;
    return old;
}

const struct lv_conf *lv_pipeline_conf(const struct lv_pipeline *p)
{
    return p->conf;
}

/* ---- shared defaults for stage slots that do not apply ---------------------------- */

void lv_input_noop(struct lv_input *in)
{
    (void)in;
}

int lv_output_flush_noop(struct lv_output *out)
{
    (void)out;
    return 0;
}

void lv_output_cancel_noop(struct lv_output *out)
{
    (void)out;
}

void lv_output_destroy_noop(struct lv_output *out)
{
    (void)out;
}
