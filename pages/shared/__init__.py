"""What the pages share. A sub-folder of pages/, so Streamlit never lists it as a page:
`access` (data, run store, runner, checkpoints, evaluations), `layout` (the error guard and
drawing helpers), `navigation` (the pages' files, and drawing each inside app.py's navigation),
`gate` (the password form in front of every page, where a password is set), `train_form` (the
Train page's form as session state, which the Sweep page fills too), `lr_find_ui` (the Train
page's learning-rate finder), `sweep_runs_ui` and `sweep_answer_ui` (the Sweep page's runs and
answer)."""
