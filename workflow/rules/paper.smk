# The manuscript: generated LaTeX parts from the tables and config (htsep.experiments.grid.paper, its templates in
# src/htsep/experiments/grid/templates), then latexmk (htsep.report.tex).

from htsep.config import paper_slice, section_slice
from htsep.experiments.grid.plan import protocols as grid_protocols
from htsep.experiments.grid.paper import GENERATED
from htsep.report.figures import paper_figures


rule paper_macros:
    """Every number, table and results sentence the manuscript quotes, as LaTeX in paper/generated/."""
    input:
        runs=expand(f"{TABLES}/{{protocol}}/runs.parquet", protocol=config["run_protocols"]),
        dt=f"{TABLES}/{config['run_protocols'][0]}/dt_values.parquet",
        stats=expand(f"{TABLES}/{{protocol}}/stats.csv", protocol=config["run_protocols"]),
        summary=expand(f"{TABLES}/{{protocol}}/summary.csv", protocol=grid_protocols(config)),
        gaps=expand(f"{TABLES}/{{protocol}}/gaps.csv", protocol=config["run_protocols"]),
        paired=expand(f"{TABLES}/{{protocol}}/paired.csv", protocol=config["run_protocols"]),
    output:
        **{name: f"{GENERATED_DIR}/{name}.tex" for name in GENERATED},
    log:
        "results/logs/paper_macros.log",
    benchmark:
        "results/benchmarks/paper_macros.tsv"
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code("paper_macros.py"),
        setup=paper_slice(config)
        | {
            "figures": paper_figures(config["run_protocols"]),
            "results_figures": paper_figures(config["run_protocols"], "results"),
        },
        analysis=section_slice(config, "analysis"),
    script:
        "../scripts/paper_macros.py"


rule provenance:
    """The paper's provenance appendix: which records and which of this invocation's runs each experiment's numbers
    come from, with their code fingerprints and kernel builds."""
    input:
        expand(f"{TABLES}/{{protocol}}/provenance.csv", protocol=grid_protocols(config)),
        f"{CALIBRATION}/provenance.csv",
        f"{MECHANISM}/spectral_provenance.csv",
        f"{MECHANISM}/landscape_provenance.csv",
        f"{FRONTIER}/provenance.csv",
        f"{CONFIRMATORY}/provenance.csv",
        f"{FACTORIAL}/provenance.csv",
        f"{ROBUSTNESS}/provenance.csv",
        f"{SENSITIVITY}/provenance.csv",
    output:
        f"{GENERATED_DIR}/provenance.tex",
    log:
        "results/logs/provenance.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        code=code("provenance.py"),
        root=config["records"]["root"],
    script:
        "../scripts/provenance.py"


rule paper:
    """paper/build/paper.pdf with latexmk (TeX Live from the system: latexmk and texlive-latex-* packages)."""
    input:
        tex="paper/paper.tex",
        bib="paper/references.bib",
        generated=rules.paper_macros.output,
        figures=figure_files(config["run_protocols"], ("pdf",)),
        mechanism_tex="paper/mechanism.tex",
        mechanism_generated=f"{GENERATED_DIR}/mechanism.tex",
        frontier_generated=f"{GENERATED_DIR}/frontier.tex",
        calibration_generated=f"{GENERATED_DIR}/calibration.tex",
        provenance_generated=f"{GENERATED_DIR}/provenance.tex",
        confirmatory_generated=[
            f"{GENERATED_DIR}/confirmatory.tex",
            f"{GENERATED_DIR}/confirmatory_abstract.tex",
        ],
        factorial_generated=f"{GENERATED_DIR}/factorial.tex",
        robustness_generated=f"{GENERATED_DIR}/robustness.tex",
        sensitivity_generated=f"{GENERATED_DIR}/sensitivity.tex",
        depth_generated=[f"{GENERATED_DIR}/depth.tex", f"{GENERATED_DIR}/depth_abstract.tex"],
    output:
        pdf=report("paper/build/paper.pdf", category="Paper", caption="../report/paper.rst"),
        latex_log="paper/build/paper.log",
    log:
        "results/logs/paper.log",
    benchmark:
        "results/benchmarks/paper.tsv"
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        code=code("paper.py"),
    script:
        "../scripts/paper.py"
