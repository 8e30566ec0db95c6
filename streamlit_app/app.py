"""The scones explorer (Streamlit layout only; the logic is in streamlit_app/explorer.py)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run streamlit_app/app.py` puts only this folder there
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from scones import config  # noqa: E402
from streamlit_app import explorer as ex  # noqa: E402

REFRESH_S = 2.0  # live view: how often the tabs re-read the target

st.set_page_config(page_title="scones explorer", page_icon="🚲", layout="wide")
config.apply_target_env()


@st.cache_resource
def get_explorer() -> ex.Explorer:
    """One boto3 connection and record cache for every session of this server."""
    return ex.Explorer()


@st.cache_data(ttl=30, show_spinner=False)
def deployed_threshold() -> float:
    return get_explorer().threshold()


X = get_explorer()

with st.sidebar:
    st.title("scones explorer")
    where = config.emulator_url() if config.TARGET == "local" else f"AWS {config.REGION}"
    st.caption(f"target **{config.TARGET}** · {where}")
    prefix = st.text_input(
        "Execution names starting with", key="prefix", placeholder="e.g. load-  or  demo-"
    )
    limit = int(
        st.number_input(
            "Newest executions", min_value=10, max_value=5000, value=500, step=50, key="limit"
        )
    )
    live = st.toggle(f"Live (refresh every {REFRESH_S:g} s)", value=True, key="live")
    deployed = deployed_threshold()
    threshold = st.slider(
        "Confidence threshold",
        min_value=0.50,
        max_value=1.00,
        value=round(deployed, 2),
        step=0.01,
        key="threshold",
        help=f"The deployed workflow uses {deployed:g}; move it to see what "
        "another threshold would route and get wrong.",
    )

every = REFRESH_S if live else None


def load_records() -> list:
    try:
        return X.records(prefix, limit)
    except Exception as err:  # emulator down, not deployed: say so, keep the page up
        st.error(f"cannot read executions: {err}")
        return []


tab_runs, tab_one, tab_threshold, tab_review, tab_health = st.tabs(
    ["Executions", "Execution", "Threshold", "Review queue", "Health"]
)


@st.fragment(run_every=every)
def executions_tab() -> None:
    recs = load_records()
    c = ex.counts(recs)
    cols = st.columns(6)
    cols[0].metric("executions", len(recs))
    cols[1].metric("succeeded", c["succeeded"])
    cols[2].metric("review", c["review"])
    cols[3].metric("not a two-wheeler", c["not_a_two_wheeler"])
    cols[4].metric("failed", c["failed"])
    cols[5].metric("running", c["running"])
    table = ex.table_rows(recs)
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        height=420,
        column_config={
            "confidence": st.column_config.ProgressColumn(
                "confidence", min_value=0.0, max_value=1.0, format="%.3f"
            )
        },
    )
    st.caption("Newest first. Pick one in the Execution tab to see its image and states.")


def redact_causes(message: object) -> object:
    """Notification and review bodies carry Lambda's whole error JSON: keep its message."""
    if isinstance(message, dict):
        return {
            k: ex.short_cause(v) if k in ("cause", "reason") and isinstance(v, str) else v
            for k, v in message.items()
        }
    return message


@st.fragment(run_every=every)
def execution_tab() -> None:
    recs = load_records()
    if not recs:
        st.info("No executions yet: run `scones demo` or `scones load --burst 20`.")
        return
    by_name = {r.name: r for r in recs}
    name = st.selectbox(
        "Execution",
        list(by_name),
        key="execution",
        format_func=lambda n: f"{n} · {by_name[n].outcome} · {by_name[n].label or '-'}",
    )
    detail = ex.execution_detail(X.c, by_name[name].arn, X.truth)
    r = detail.record
    left, right = st.columns([1, 3])
    with left:
        if ex.is_image(detail.image):
            st.image(detail.image, caption=r.s3_key, width=192)
        elif detail.image:
            st.warning(f"not an image: {detail.image[:60]!r}")
        else:
            st.warning(f"no object at s3://{r.s3_bucket}/{r.s3_key}")
    with right:
        conf = f"{r.confidence:.4f}" if r.confidence is not None else "-"
        took = f"{r.seconds:.2f} s" if r.seconds is not None else "running"
        st.markdown(
            f"**{r.status}** · outcome **{r.outcome}** · label **{r.label or '-'}** · "
            f"confidence **{conf}**"
        )
        st.markdown(f"truth: **{r.truth or 'unknown'}** · retries: **{r.retries}** · {took}")
        if r.error:
            st.error(f"{r.error}: {ex.short_cause(r.cause)}")
        if detail.notification:
            st.markdown(f"notification: **{detail.notification['subject']}**")
            st.json(ex.as_json_object(redact_causes(detail.notification["message"])), expanded=True)
        if detail.review_message:
            st.markdown("sent to the review queue:")
            st.json(ex.as_json_object(redact_causes(detail.review_message)), expanded=True)
    st.subheader("States")
    for i, s in enumerate(detail.states):
        took = f"{s['ms']} ms" if s["ms"] is not None else "end"
        title = f"{i + 1}. {s['state']} ({s['type']}) · {took}"
        if s["retries"]:
            title += f" · {s['retries']} retries"
        if s["errors"]:
            title += f" · {s['errors'][-1]['error']}"
        with st.expander(title):
            st.caption(f"resource: {s['resource'] or '-'} · attempts: {s['attempts']}")
            a, b = st.columns(2)
            a.markdown("input")
            a.json(ex.as_json_object(s["input"]), expanded=1)
            b.markdown("output")
            b.json(ex.as_json_object(s["output"]), expanded=1)
            for e in s["errors"]:
                st.code(f"{e['error']}: {e['cause']}", wrap_lines=True)


@st.fragment(run_every=every)
def threshold_tab() -> None:
    recs = load_records()
    view = ex.threshold_view(recs, threshold)
    at = view["at"]
    cols = st.columns(4)
    cols[0].metric(
        "coverage",
        f"{at['coverage']:.1%}",
        help="share of classified images routed without a person",
    )
    cols[1].metric("errors", at["errors"], help="routed automatically but wrong (known truth)")
    cols[2].metric("error rate", f"{at['error_rate']:.1%}")
    cols[3].metric("to review", at["review"])
    st.caption(
        f"At threshold {threshold:.2f} over {at['n']} classified executions "
        f"(deployed: {deployed:g})."
    )
    png = ex.timeline_png(recs, threshold)
    if png:
        st.image(png)
    st.line_chart(
        {
            "threshold": [p["threshold"] for p in view["sweep"]],
            "coverage": [p["coverage"] for p in view["sweep"]],
            "error rate": [p["error_rate"] for p in view["sweep"]],
        },
        x="threshold",
        y=["coverage", "error rate"],
        height=260,
    )


@st.fragment(run_every=every)
def review_tab() -> None:
    try:
        q = ex.review_queue(X.c)
    except Exception as err:
        st.error(f"cannot read the review queue: {err}")
        return
    st.metric("waiting for review", q["depth"])
    st.caption(q["url"] or "no review queue: run `scones deploy`")
    if q["messages"]:
        st.dataframe(
            [{**m, "inferences": str(m.get("inferences"))} for m in q["messages"]],
            hide_index=True,
            width="stretch",
        )


@st.fragment(run_every=every)
def health_tab() -> None:
    rows = ex.stack_health(X.c)
    for row in rows:
        st.markdown(f"{'🟢' if row['ok'] else '🔴'} **{row['part']}** — {row['detail']}")


with tab_runs:
    executions_tab()
with tab_one:
    execution_tab()
with tab_threshold:
    threshold_tab()
with tab_review:
    review_tab()
with tab_health:
    health_tab()
