/*
 * ctl_bench_out: what harmonicctl bench prints and writes.  The stdout
 * tables follow the seed report (one row per model, the peak in bold with
 * its level in the last column); the CSV has one row per trial, the JSON
 * every request; the SVG is a static plot of aggregate tok/s against the
 * parallel level (no scripts, one <path> per series).
 */
#include "ctl_bench.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

const struct bench_point *
bench_series_point(const struct bench_series *s, int level)
{
	for (int i = 0; i < s->npoints; i++)
		if (s->points[i].level == level)
			return &s->points[i];
	return NULL;
}

const struct bench_point *
bench_series_peak(const struct bench_series *s)
{
	const struct bench_point *best = NULL;

	for (int i = 0; i < s->npoints; i++) {
		const struct bench_point *p = &s->points[i];

		if (p->valid && (best == NULL || p->agg_tps > best->agg_tps))
			best = p;
	}
	return best;
}

/* "qwen3:4b", or "qwen3:4b (through)" for the harmonicd series. */
static void
series_label(const struct bench_series *s, char *buf, size_t size)
{
	snprintf(buf, size, "%s%s", s->model,
	    s->target == BENCH_TARGET_THROUGH ? " (through)" : "");
}

void
bench_print_table(const struct bench_result *res, FILE *out)
{
	const struct bench_opts *o = res->opts;

	fprintf(out, "| Model |");
	for (int l = 0; l < o->nlevels; l++)
		fprintf(out, " %dx |", o->levels[l]);
	fprintf(out, " **Peak** |\n|-------|");
	for (int l = 0; l < o->nlevels; l++)
		fprintf(out, "-----|");
	fprintf(out, "----------|\n");
	for (int i = 0; i < res->nseries; i++) {
		const struct bench_series *s = &res->series[i];
		const struct bench_point *peak = bench_series_peak(s);
		char label[256];

		series_label(s, label, sizeof(label));
		fprintf(out, "| %s |", label);
		for (int l = 0; l < s->npoints; l++) {
			const struct bench_point *p = &s->points[l];

			if (!p->valid)
				fprintf(out, " - |");
			else if (p == peak)
				fprintf(out, " **%.1f** |", p->agg_tps);
			else
				fprintf(out, " %.1f |", p->agg_tps);
		}
		if (peak)
			fprintf(out, " %dx |\n", peak->level);
		else
			fprintf(out, " - |\n");
	}
}

/* min and max aggregate rate over the trials that completed something. */
static void
trial_range(const struct bench_point *p, double *lo, double *hi)
{
	*lo = INFINITY;
	*hi = 0;
	for (int t = 0; t < p->ntrials; t++) {
		if (p->trials[t].ok == 0)
			continue;
		*lo = fmin(*lo, p->trials[t].agg_tps);
		*hi = fmax(*hi, p->trials[t].agg_tps);
	}
}

void
bench_print_details(const struct bench_result *res, FILE *out)
{
	fprintf(out, "| Model | Parallel | Aggregate tok/s | Trial range | "
	    "Per-request tok/s | TTFT p50 ms | TTFT p95 ms | Trials | Errors |\n"
	    "|-------|----------|-----------------|-------------|"
	    "-------------------|-------------|-------------|--------|--------|\n");
	for (int i = 0; i < res->nseries; i++) {
		const struct bench_series *s = &res->series[i];
		char label[256];

		series_label(s, label, sizeof(label));
		for (int l = 0; l < s->npoints; l++) {
			const struct bench_point *p = &s->points[l];
			double lo, hi;

			if (!p->valid) {
				fprintf(out, "| %s | %dx | - | - | - | - | - | %d | %d |\n",
				    label, p->level, p->ntrials, p->errors);
				continue;
			}
			trial_range(p, &lo, &hi);
			fprintf(out, "| %s | %dx | %.1f | %.1f-%.1f | %.1f | %.0f | "
			    "%.0f | %d | %d |\n", label, p->level, p->agg_tps, lo,
			    hi, p->req_tps, p->ttft_p50_s * 1000,
			    p->ttft_p95_s * 1000, p->ntrials, p->errors);
		}
	}
}

void
bench_print_comparison(const struct bench_result *res, FILE *out)
{
	fprintf(out, "| Model | Parallel | Direct tok/s | Through tok/s | Ratio |\n"
	    "|-------|----------|--------------|---------------|-------|\n");
	for (int i = 0; i + 1 < res->nseries; i += 2) {
		const struct bench_series *d = &res->series[i],
		    *t = &res->series[i + 1];

		for (int l = 0; l < d->npoints; l++) {
			const struct bench_point *pd = &d->points[l],
			    *pt = &t->points[l];

			if (!pd->valid || !pt->valid || pd->agg_tps <= 0) {
				fprintf(out, "| %s | %dx | - | - | - |\n", d->model,
				    pd->level);
				continue;
			}
			fprintf(out, "| %s | %dx | %.1f | %.1f | %.1f%% |\n",
			    d->model, pd->level, pd->agg_tps, pt->agg_tps,
			    100 * pt->agg_tps / pd->agg_tps);
		}
	}
}

static FILE *
open_output(const char *path)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		fprintf(stderr, "harmonicctl bench: %s: %s\n", path,
		    strerror(errno));
	return f;
}

static int
close_output(FILE *f, const char *path)
{
	bool bad = ferror(f) != 0;

	if (fclose(f) != 0 || bad) {
		fprintf(stderr, "harmonicctl bench: %s: write failed\n", path);
		return -1;
	}
	return 0;
}

/* A CSV field, quoted when it needs to be (RFC 4180). */
static void
csv_field(FILE *f, const char *s)
{
	if (strpbrk(s, ",\"\r\n") == NULL) {
		fputs(s, f);
		return;
	}
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

int
bench_write_csv(const struct bench_result *res, const char *path)
{
	FILE *f = open_output(path);

	if (f == NULL)
		return -1;
	fprintf(f, "model,target,url,level,trial,requests,ok,errors,tokens,"
	    "wall_s,agg_tok_s,req_tok_s,ttft_p50_ms,ttft_p95_ms\n");
	for (int i = 0; i < res->nseries; i++) {
		const struct bench_series *s = &res->series[i];

		for (int l = 0; l < s->npoints; l++) {
			const struct bench_point *p = &s->points[l];

			for (int t = 0; t < p->ntrials; t++) {
				const struct bench_trial *tr = &p->trials[t];

				csv_field(f, s->model);
				fprintf(f, ",%s,", bench_target_name(s->target));
				csv_field(f, s->url);
				fprintf(f, ",%d,%d,%d,%d,%d,%lld,%.4f,%.3f,%.3f,%.2f,%.2f\n",
				    p->level, t + 1, tr->level, tr->ok, tr->errors,
				    (long long)tr->tokens, tr->wall_s, tr->agg_tps,
				    tr->req_tps, tr->ttft_p50_s * 1000,
				    tr->ttft_p95_s * 1000);
			}
		}
	}
	return close_output(f, path);
}

static json_t *
request_json(const struct bench_request *rq, double divisor)
{
	json_t *o = json_pack("{s:i, s:b, s:I, s:I}", "status", rq->status,
	    "ok", rq->ok, "eval_count", (json_int_t)rq->eval_count,
	    "eval_duration_ns", (json_int_t)rq->eval_duration);

	json_object_set_new(o, "tok_s", rq->eval_duration > 0 ?
	    json_real((double)rq->eval_count / ((double)rq->eval_duration / 1e9)) :
	    json_null());
	json_object_set_new(o, "ttft_ms", rq->ttft_s >= 0 ?
	    json_real(rq->ttft_s * divisor * 1000) : json_null());
	json_object_set_new(o, "end_ms", json_real(rq->end_s * divisor * 1000));
	json_object_set_new(o, "error", rq->error[0] ?
	    json_string(rq->error) : json_null());
	return o;
}

static json_t *
trial_json(const struct bench_trial *t, int index, double divisor)
{
	json_t *reqs = json_array();

	for (int q = 0; q < t->level; q++)
		json_array_append_new(reqs, request_json(&t->reqs[q], divisor));
	return json_pack("{s:i, s:i, s:i, s:I, s:f, s:f, s:f, s:f, s:f, s:o}",
	    "trial", index + 1, "ok", t->ok, "errors", t->errors,
	    "tokens", (json_int_t)t->tokens, "wall_s", t->wall_s,
	    "agg_tok_s", t->agg_tps, "req_tok_s", t->req_tps,
	    "ttft_p50_ms", t->ttft_p50_s * 1000,
	    "ttft_p95_ms", t->ttft_p95_s * 1000, "requests", reqs);
}

static json_t *
point_json(const struct bench_point *p, double divisor)
{
	json_t *trials = json_array();
	json_t *o = json_pack("{s:i, s:b, s:i}", "level", p->level, "valid",
	    p->valid, "errors", p->errors);

	if (p->valid) {
		json_object_set_new(o, "agg_tok_s", json_real(p->agg_tps));
		json_object_set_new(o, "req_tok_s", json_real(p->req_tps));
		json_object_set_new(o, "ttft_p50_ms",
		    json_real(p->ttft_p50_s * 1000));
		json_object_set_new(o, "ttft_p95_ms",
		    json_real(p->ttft_p95_s * 1000));
	}
	for (int t = 0; t < p->ntrials; t++)
		json_array_append_new(trials, trial_json(&p->trials[t], t, divisor));
	json_object_set_new(o, "trials", trials);
	return o;
}

static json_t *
comparison_json(const struct bench_result *res)
{
	json_t *rows = json_array();

	for (int i = 0; i + 1 < res->nseries; i += 2) {
		const struct bench_series *d = &res->series[i],
		    *t = &res->series[i + 1];

		for (int l = 0; l < d->npoints; l++) {
			const struct bench_point *pd = &d->points[l],
			    *pt = &t->points[l];
			bool both = pd->valid && pt->valid && pd->agg_tps > 0;

			json_array_append_new(rows, json_pack("{s:s, s:i, s:o, s:o, s:o}",
			    "model", d->model, "level", pd->level,
			    "direct_tok_s", pd->valid ? json_real(pd->agg_tps) : json_null(),
			    "through_tok_s", pt->valid ? json_real(pt->agg_tps) : json_null(),
			    "ratio", both ? json_real(pt->agg_tps / pd->agg_tps) : json_null()));
		}
	}
	return rows;
}

int
bench_write_json(const struct bench_result *res, const char *path)
{
	const struct bench_opts *o = res->opts;
	json_t *levels = json_array(), *series = json_array(), *root;
	int rc = 0;

	for (int l = 0; l < o->nlevels; l++)
		json_array_append_new(levels, json_integer(o->levels[l]));
	for (int i = 0; i < res->nseries; i++) {
		const struct bench_series *s = &res->series[i];
		const struct bench_point *peak = bench_series_peak(s);
		json_t *points = json_array();

		for (int l = 0; l < s->npoints; l++)
			json_array_append_new(points,
			    point_json(&s->points[l], o->speed_divisor));
		json_array_append_new(series, json_pack("{s:s, s:s, s:s, s:o, s:o}",
		    "model", s->model, "target", bench_target_name(s->target),
		    "url", s->url, "peak", peak ? json_pack("{s:i, s:f}",
		    "level", peak->level, "agg_tok_s", peak->agg_tps) : json_null(),
		    "levels", points));
	}
	root = json_pack("{s:s, s:s, s:s?, s:s, s:I, s:o, s:i, s:o, s:b, s:f, s:o}",
	    "tool", "harmonicctl bench", "url", o->url, "through", o->through,
	    "prompt", o->prompt, "num_ctx", (json_int_t)o->num_ctx,
	    "num_predict", o->num_predict >= 0 ?
	    json_integer(o->num_predict) : json_null(),
	    "trials", o->trials, "levels", levels, "warmup", o->warmup,
	    "speed_divisor", o->speed_divisor, "series", series);
	if (o->through)
		json_object_set_new(root, "comparison", comparison_json(res));
	if (root == NULL || json_dump_file(root, path,
	    JSON_INDENT(1) | JSON_REAL_PRECISION(7)) != 0) {
		fprintf(stderr, "harmonicctl bench: %s: cannot write JSON\n", path);
		rc = -1;
	}
	json_decref(root);
	return rc;
}

/* ---- SVG ---------------------------------------------------------------- */

#define SVG_W 840
#define SVG_H 440     /* at least; a long legend makes it taller */
#define LEGEND_ROW 34.0
#define PLOT_L 70.0     /* plot area, in SVG units */
#define PLOT_R 560.0
#define PLOT_T 50.0
#define PLOT_B 380.0

static const char *const palette[] = {
	"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
	"#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
};

static void
xml_text(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&apos;", f); break;
		default:
			/* Control characters are not allowed in XML 1.0. */
			if ((unsigned char)*s >= 0x20 || *s == '\t')
				fputc(*s, f);
		}
	}
}

/* A round step (1, 2 or 5 times a power of ten) giving about n ticks. */
static double
nice_step(double span, int n)
{
	double raw = span / n, mag = pow(10, floor(log10(raw))), f = raw / mag;

	return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

struct scale {
	double xmax, ymax;
};

static double
sx(const struct scale *sc, double level)
{
	return PLOT_L + level / sc->xmax * (PLOT_R - PLOT_L);
}

static double
sy(const struct scale *sc, double tps)
{
	return PLOT_B - tps / sc->ymax * (PLOT_B - PLOT_T);
}

static void
svg_axes(FILE *f, const struct bench_result *res, const struct scale *sc,
    double ystep)
{
	const struct bench_opts *o = res->opts;

	for (double y = 0; y <= sc->ymax + ystep / 2; y += ystep) {
		fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
		    "stroke=\"#ddd\"/>\n", PLOT_L, sy(sc, y), PLOT_R, sy(sc, y));
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
		    PLOT_L - 6, sy(sc, y) + 4, y);
	}
	for (int l = 0; l < o->nlevels; l++) {
		double x = sx(sc, o->levels[l]);

		fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
		    "stroke=\"#999\"/>\n", x, PLOT_B, x, PLOT_B + 5);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n",
		    x, PLOT_B + 18, o->levels[l]);
	}
	fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n",
	    PLOT_L, PLOT_B, PLOT_R, PLOT_B);
	fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n",
	    PLOT_L, PLOT_T, PLOT_L, PLOT_B);
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">"
	    "parallel requests (level)</text>\n", (PLOT_L + PLOT_R) / 2, PLOT_B + 40);
	fprintf(f, "<text x=\"18\" y=\"%.1f\" text-anchor=\"middle\" "
	    "transform=\"rotate(-90 18 %.1f)\">aggregate tok/s</text>\n",
	    (PLOT_T + PLOT_B) / 2, (PLOT_T + PLOT_B) / 2);
}

/* One series: its line (a single <path>), its points, its peak marker and
 * its legend entry. */
static void
svg_series(FILE *f, const struct bench_series *s, int index,
    const struct scale *sc)
{
	const char *color = palette[index % (int)(sizeof(palette) / sizeof(palette[0]))];
	const struct bench_point *peak = bench_series_peak(s);
	const char *dash = s->target == BENCH_TARGET_THROUGH ?
	    " stroke-dasharray=\"6 3\"" : "";
	char label[256];
	bool pen_down = false;
	double ly = PLOT_T + 10 + index * LEGEND_ROW;

	series_label(s, label, sizeof(label));
	fprintf(f, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s d=\"",
	    color, dash);
	for (int l = 0; l < s->npoints; l++) {
		const struct bench_point *p = &s->points[l];

		if (!p->valid) {
			pen_down = false;   /* a gap where nothing completed */
			continue;
		}
		fprintf(f, "%s%.1f %.1f ", pen_down ? "L" : "M",
		    sx(sc, p->level), sy(sc, p->agg_tps));
		pen_down = true;
	}
	fprintf(f, "\"><title>");
	xml_text(f, label);
	fprintf(f, "</title></path>\n");
	for (int l = 0; l < s->npoints; l++) {
		const struct bench_point *p = &s->points[l];

		if (p->valid && p != peak)
			fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
			    sx(sc, p->level), sy(sc, p->agg_tps), color);
	}
	if (peak) {
		fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"6\" fill=\"white\" "
		    "stroke=\"%s\" stroke-width=\"3\"><title>peak ",
		    sx(sc, peak->level), sy(sc, peak->agg_tps), color);
		xml_text(f, label);
		fprintf(f, ": %.1f tok/s at %dx</title></circle>\n",
		    peak->agg_tps, peak->level);
	}
	fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"4\" fill=\"%s\"/>\n",
	    PLOT_R + 20, ly - 4, color);
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", PLOT_R + 40, ly);
	xml_text(f, label);
	fprintf(f, "</text>\n");
	if (peak)
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#555\">"
		    "peak %.1f tok/s @ %dx</text>\n", PLOT_R + 40, ly + 14,
		    peak->agg_tps, peak->level);
}

int
bench_write_svg(const struct bench_result *res, const char *path)
{
	const struct bench_opts *o = res->opts;
	struct scale sc = { .xmax = o->levels[o->nlevels - 1], .ymax = 0 };
	double ystep;
	int height = SVG_H;
	FILE *f;

	for (int i = 0; i < res->nseries; i++) {
		const struct bench_point *peak = bench_series_peak(&res->series[i]);

		if (peak)
			sc.ymax = fmax(sc.ymax, peak->agg_tps);
	}
	if (sc.xmax < 2)
		sc.xmax = 2;
	if (sc.ymax <= 0)
		sc.ymax = 1;
	ystep = nice_step(sc.ymax * 1.05, 6);
	sc.ymax = ceil(sc.ymax * 1.05 / ystep) * ystep;
	if (PLOT_T + res->nseries * LEGEND_ROW + 10 > height)
		height = (int)(PLOT_T + res->nseries * LEGEND_ROW + 10);
	if ((f = open_output(path)) == NULL)
		return -1;
	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
	    "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
	    "<title>Aggregate tok/s against parallel requests</title>\n"
	    "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
	    SVG_W, height, SVG_W, height);
	fprintf(f, "<text x=\"%.1f\" y=\"24\" font-size=\"15\" font-weight=\"bold\">",
	    PLOT_L);
	if (o->title)
		xml_text(f, o->title);
	else {
		fprintf(f, "Aggregate tok/s vs parallel requests: ");
		xml_text(f, o->url);
	}
	fprintf(f, "</text>\n");
	svg_axes(f, res, &sc, ystep);
	for (int i = 0; i < res->nseries; i++)
		svg_series(f, &res->series[i], i, &sc);
	fprintf(f, "</svg>\n");
	return close_output(f, path);
}
