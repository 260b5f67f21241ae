#!/usr/bin/env bash
# The wheels benchmarks/gpu_scale.sh needs on the lent GPU machine (Python 3.12, torch and
# transformers already there, no network): the Jupyter stack, plotly and peft, into .whl/.
# The working tree plus .whl must stay under the device tool's 64 MiB, hence the pruning.
set -euo pipefail
grep -qs '^/.whl/' .git/info/exclude || echo /.whl/ >> .git/info/exclude
tmp=$(mktemp -d)
pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d "$tmp" \
    papermill ipykernel plotly ipywidgets anywidget peft nbformat
rm -rf .whl && mkdir .whl
# only what the machine's image lacks (KINDS.md lists what it holds); debugpy is left out,
# ipykernel runs without it, to stay under the size limit
keep='^(anywidget|asttokens|comm|entrypoints|executing|fastjsonschema|ipykernel|ipython|ipython_pygments_lexers|ipywidgets|jedi|jsonschema|jsonschema_specifications|jupyter_client|jupyter_core|jupyterlab_widgets|matplotlib_inline|nbclient|nbformat|nest_asyncio2|papermill|parso|peft|pexpect|platformdirs|plotly|prompt_toolkit|psygnal|ptyprocess|pure_eval|pyzmq|referencing|rpds_py|stack_data|tenacity|tornado|traitlets|wcwidth|widgetsnbextension)-'
for w in "$tmp"/*.whl; do basename "$w" | grep -Eq "$keep" && cp "$w" .whl/; done
du -sh .whl
