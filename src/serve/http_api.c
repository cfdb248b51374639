/* The /v1 handlers: bodies go to the request parser, inferences to the
 * model workers (the connection waits suspended, without a thread), jobs
 * to the jobs part. */
#include "serve/http.h"

#include <stdio.h>
#include <stdlib.h>

/* The body as a string ("" when none came). */
static const char *body_of(const http_request *r) {
    return r->body ? r->body : "";
}

static enum MHD_Result no_model(http_request *r, const char *name) {
    return http_reply_error(r, 404, "model", NULL, NULL,
                            "no model '%s' is served; GET /v1/models lists them", name);
}

/* POST /v1/infer and /v1/generate: parse, find the model, hand the request
 * to its worker and wait suspended. A request submitted is the worker's to
 * free; any other is freed here. */
static enum MHD_Result model_request(moe_server *s, http_request *r, int generate) {
    serve_infer_request in;
    serve_generate_request gen;
    serve_error err = {0};
    moe_status st = generate ? serve_parse_generate(body_of(r), r->body_len, &s->limits, &gen, &err)
                             : serve_parse_infer(body_of(r), r->body_len, &s->limits, &in, &err);
    const char *name = generate ? gen.model : in.model;
    serve_model *m = st == MOE_OK ? serve_models_find(s->models, name) : NULL;
    enum MHD_Result res;
    int taken = 0;
    if (st != MOE_OK) {
        res = http_reply_serve_error(r, &err);
    } else if (!m) {
        res = no_model(r, name);
    } else {
        r->pending = 1;
        st = generate ? serve_generate_submit(m, &gen, &r->reply, http_async_done, r, &err)
                      : serve_infer_submit(m, &in, &r->reply, http_async_done, r, &err);
        taken = st == MOE_OK;
        res = http_async_wait(r, st, &err);
    }
    if (taken) return res;
    if (generate)
        serve_generate_request_free(&gen);
    else
        serve_infer_request_free(&in);
    return res;
}

HTTP_HANDLER(http_h_infer) {
    return model_request(s, r, 0);
}

HTTP_HANDLER(http_h_generate) {
    return model_request(s, r, 1);
}

HTTP_HANDLER(http_h_models) {
    return http_reply_json(r, 200, serve_models_list_json(s->models));
}

/* A jobs call's answer: json with ok_status, or its error. */
static enum MHD_Result job_answer(http_request *r, moe_status st, char *json, int ok_status,
                                  serve_error *err) {
    if (st == MOE_OK) return http_reply_json(r, ok_status, json);
    free(json);
    if (err->status < 400) return http_reply_error(r, 500, "", NULL, NULL, "%s", moe_last_error());
    return http_reply_serve_error(r, err);
}

HTTP_HANDLER(http_h_train) {
    char *json = NULL;
    serve_error err = {0};
    moe_status st = serve_jobs_start(s->jobs, body_of(r), r->body_len, r->key_id, &json, &err);
    return job_answer(r, st, json, 202, &err);
}

HTTP_HANDLER(http_h_jobs_list) {
    char *json = NULL;
    serve_error err = {0};
    moe_status st = serve_jobs_list(s->jobs, &json);
    return job_answer(r, st, json, 200, &err);
}

HTTP_HANDLER(http_h_job_get) {
    char *json = NULL;
    serve_error err = {0};
    moe_status st = serve_jobs_get(s->jobs, r->param, &json, &err);
    return job_answer(r, st, json, 200, &err);
}

HTTP_HANDLER(http_h_job_cancel) {
    char *json = NULL;
    serve_error err = {0};
    moe_status st = serve_jobs_cancel(s->jobs, r->param, &json, &err);
    snprintf(r->detail, sizeof r->detail, "job=%.63s", r->param);
    return job_answer(r, st, json, 200, &err);
}

HTTP_HANDLER(http_h_job_resume) {
    char *json = NULL;
    serve_error err = {0};
    moe_status st = serve_jobs_resume(s->jobs, r->param, r->key_id, &json, &err);
    snprintf(r->detail, sizeof r->detail, "job=%.63s", r->param);
    return job_answer(r, st, json, 202, &err);
}
