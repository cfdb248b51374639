/* The files the server hands out: the dashboard and the OpenAPI document
 * are compiled in (cmake/embed.cmake); plotly.min.js (3.5 MB) is read once
 * at start from where `moe report` finds it. */
#include "moe/report.h"
#include "serve/http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const unsigned char moe_dashboard_html[], moe_dashboard_js[], moe_dashboard_css[],
    moe_favicon_svg[], moe_openapi_json[];
extern const size_t moe_dashboard_html_len, moe_dashboard_js_len, moe_dashboard_css_len,
    moe_favicon_svg_len, moe_openapi_json_len;

moe_status http_assets_load(moe_server *s) {
    char path[4096];
    if (moe_report_find_plotly(path, sizeof path) != MOE_OK) {
        /* the API works without it; only the dashboard's charts need it */
        snprintf(s->plotly_error, sizeof s->plotly_error, "%s", moe_last_error());
        return MOE_OK;
    }
    FILE *fp = fopen(path, "rb");
    long n = -1;
    if (fp && fseek(fp, 0, SEEK_END) == 0) n = ftell(fp);
    unsigned char *data = n > 0 && fseek(fp, 0, SEEK_SET) == 0 ? malloc((size_t)n) : NULL;
    int ok = data && fread(data, 1, (size_t)n, fp) == (size_t)n;
    int err = errno;
    if (fp) fclose(fp);
    if (!ok) {
        free(data);
        snprintf(s->plotly_error, sizeof s->plotly_error, "cannot read %.400s: %.60s", path,
                 strerror(err));
        return MOE_OK;
    }
    s->plotly = data;
    s->plotly_len = (size_t)n;
    return MOE_OK;
}

void http_assets_free(moe_server *s) {
    free(s->plotly);
    s->plotly = NULL;
}

int http_asset_get(const moe_server *s, const char *name, http_asset *out) {
    static const char *js = "text/javascript; charset=utf-8";
    if (!strcmp(name, "dashboard.html"))
        *out = (http_asset){moe_dashboard_html, moe_dashboard_html_len, "text/html; charset=utf-8"};
    else if (!strcmp(name, "dashboard.js"))
        *out = (http_asset){moe_dashboard_js, moe_dashboard_js_len, js};
    else if (!strcmp(name, "dashboard.css"))
        *out = (http_asset){moe_dashboard_css, moe_dashboard_css_len, "text/css; charset=utf-8"};
    else if (!strcmp(name, "favicon.svg"))
        *out = (http_asset){moe_favicon_svg, moe_favicon_svg_len, "image/svg+xml"};
    else if (!strcmp(name, "openapi.json"))
        *out = (http_asset){moe_openapi_json, moe_openapi_json_len, "application/json"};
    else if (!strcmp(name, "plotly.min.js") && s->plotly)
        *out = (http_asset){s->plotly, s->plotly_len, js};
    else
        return 0;
    return 1;
}
