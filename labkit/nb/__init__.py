"""One module per notebook, for the mechanism code that notebook defines in its cells tagged
`export` (d2l's ``#@save``). These files are generated: edit the notebook, then run

    python -m labkit.lab.notebooks --export

A test checks that every file here matches its notebook. Import them in tests and in later
notebooks that build on an earlier one's mechanism."""
