"""Training curves of the picked runs: loss and accuracy per epoch, and the LR schedule."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import streamlit as st

from dashboard import charts, sidebar, ui

st.set_page_config(page_title="Curves · Digit Lab", page_icon="📈", layout="wide")
sidebar.show()
st.title("Training curves")

runs = ui.cached_runs()
shown = ui.picked_runs(runs)
if shown.empty:
    ui.explain_nothing_to_show()
    st.stop()
if not ui.picked_run_ids():
    st.caption("Showing every finished run. Pick runs on Home to compare a few.")

ui.warn_unknown_link_values({"x": charts.X_AXES, "log_loss": ui.ON_OFF, "by_seed": ui.ON_OFF})
x = st.radio(
    "x axis",
    list(charts.X_AXES),
    horizontal=True,
    key="x",
    bind="query-params",
    help="seconds: each run's epoch times (training and validation) added up; its "
    "leaderboard wall time also counts start-up, testing and saving",
)
log_loss = st.checkbox(
    "Loss on a log scale",
    key="log_loss",
    bind="query-params",
    help="Tells apart small losses late in training, and keeps a diverging run from "
    "flattening the other curves",
)
by_seed = st.toggle(
    "Group runs that differ only in seed",
    key="by_seed",
    bind="query-params",
    help="One curve per setting: the mean over its seeds, shaded between the lowest and "
    "highest run. Finished runs only; a run that stopped early leaves the later epochs' mean.",
)
history = ui.history_of(shown)
if history.empty:
    st.warning("None of these runs has a training history yet.")
    st.stop()
if by_seed:
    history = ui.seed_history(shown, history)
    if history.empty:
        st.warning("None of these runs has finished: only finished runs are grouped.")
        st.stop()

st.caption(
    f"Colour = framework (one shade per {'setting' if by_seed else 'run'}), solid = DNN, "
    f"dashed = CNN; hover a point for the {'mean' if by_seed else 'run and value'}."
)
legend = {"legend_title_text": "setting (mean of its runs)"} if by_seed else {}
for metric in charts.METRICS:
    figure = charts.curves_figure(history, metric, x=x, log_y=log_loss and metric == "loss")
    st.plotly_chart(figure.update_layout(**legend), key=f"curves_{metric}")
ui.show_curves_table(history)

st.subheader("Learning-rate schedule")
st.plotly_chart(charts.lr_figure(history).update_layout(**legend), key="lr")
if by_seed:  # a mean of plateau schedules is a rate no run used: no exact values to list
    st.caption("The mean learning rate per setting; ungroup the runs for each run's values.")
    st.stop()
with st.expander("Learning rate per epoch (table)"):
    table = history.pivot_table(index="epoch", columns="label", values="lr")
    exact = st.column_config.NumberColumn(format="%.4g")  # 0.00225, not 0.0023
    columns = dict.fromkeys(table.columns, exact)
    st.dataframe(table, column_config=columns, placeholder=ui.MISSING, key="lr_table")
