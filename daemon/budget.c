/* budget: memory plan tables from a validated config. */
#include "budget.h"

#include "config.h"

double
budget_tier_gb(const struct config *cfg, int t)
{
	double sum = 0;

	for (int i = 0; i < cfg->n_models; i++)
		if (cfg->models[i].tier == t)
			for (int k = 0; k < cfg->models[i].n_placements; k++)
				sum += cfg->models[i].placements[k].memory_gb;
	return sum;
}

double
budget_total_gb(const struct config *cfg)
{
	double sum = 0;

	for (int h = 0; h < cfg->n_hosts; h++)
		sum += cfg->hosts[h].planned_gb;
	return sum;
}

void
budget_print(const struct config *cfg, FILE *out)
{
	for (int h = 0; h < cfg->n_hosts; h++) {
		const struct cfg_host *host = &cfg->hosts[h];

		fprintf(out, "host %s (%s): %.1f GB memory, %.1f GB reserved, %d slots\n", host->name,
		    host->url, host->memory_gb, host->reserve_gb, host->max_parallel);
		fprintf(out, "  %-22s %-12s %8s %8s %8s %9s\n", "model", "tier", "parallel", "base GB",
		    "KV GB", "total GB");
		for (int i = 0; i < cfg->n_models; i++) {
			const struct cfg_model *m = &cfg->models[i];
			for (int k = 0; k < m->n_placements; k++) {
				const struct cfg_placement *p = &m->placements[k];
				char par[16];
				if (p->host != h)
					continue;
				if (p->parallel_auto)
					snprintf(par, sizeof(par), "auto<=%d", p->parallel);
				else
					snprintf(par, sizeof(par), "%d", p->parallel);
				fprintf(out, "  %-22s %-12s %8s %8.1f %8.1f %9.1f\n", m->name,
				    cfg->tiers[m->tier].name, par, m->base_gb, p->parallel * m->kv_gb,
				    p->memory_gb);
			}
		}
		fprintf(out, "  %-22s %-12s %8s %8s %8s %9.1f of %.1f GB budget (%.0f%%)\n\n", "host total",
		    "", "", "", "", host->planned_gb, host->memory_gb - host->reserve_gb,
		    100.0 * host->planned_gb / (host->memory_gb - host->reserve_gb));
	}
	fprintf(out, "tiers:\n");
	for (int t = 0; t < cfg->n_tiers; t++)
		fprintf(out, "  %-22s weight %4d  %9.1f GB\n", cfg->tiers[t].name, cfg->tiers[t].weight,
		    budget_tier_gb(cfg, t));
	fprintf(out, "  %-22s %11s  %9.1f GB\n", "total", "", budget_total_gb(cfg));
}

int
budget_check_file(const char *file, FILE *out, FILE *err)
{
	struct config_diags diags = {0};
	struct config *cfg = config_load(file, &diags);

	config_diags_print(&diags, err);
	config_diags_free(&diags);
	if (cfg == NULL)
		return CONFIG_EXIT_ERROR;
	budget_print(cfg, out);
	fprintf(out, "configuration OK\n");
	config_unref(cfg);
	return 0;
}
