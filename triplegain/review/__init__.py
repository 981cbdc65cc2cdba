"""Decision review: every decision and LLM call, searchable, with the numbers that led to it (docs/ARCHITECTURE.md).

The reads are what the CLI, the report and ``notebooks/decision_review.ipynb`` share: ``filters`` say which
decisions and LLM calls to read, ``where`` turns them into SQL of fixed fragments and ``$n`` parameters, and
``records`` are what comes back; ``decision_queries`` and ``call_queries`` list, count, page through (``pages``)
and read one whole row, ``id_prefixes`` finds a row by the first digits of its id, and ``report_queries`` reads
daemon runs and the report's series. ``export`` writes JSON Lines, CSV and Parquet a page at a time; ``report``
draws the self-contained HTML report; ``render`` prints to the terminal; ``args`` checks the command-line values;
``cli`` holds the ``decisions``, ``llm-calls`` and ``report`` commands. Reading only: nothing here writes to the
database.
"""


from triplegain.model import FillRow
from triplegain.review.call_queries import count_llm_calls, list_llm_calls, llm_call, llm_call_pages
from triplegain.review.decision_queries import (
    count_decisions,
    decision_counts,
    decision_pages,
    decision_record,
    list_decisions,
)
from triplegain.review.filters import DEFAULT_LIMIT, DecisionFilter, LLMCallFilter
from triplegain.review.id_prefixes import decision_ids_starting_with, llm_call_ids_starting_with
from triplegain.review.records import (
    DaemonRun,
    DailyCost,
    DecisionCounts,
    DecisionRecord,
    DecisionSummary,
    EquityPoint,
    LevelChange,
    LLMCall,
    LLMCallSummary,
    OrderWithFills,
    PricePoint,
    ReportScope,
    TradePoint,
)
from triplegain.review.report_queries import (
    daily_llm_costs,
    equity_series,
    find_run,
    latest_run,
    level_changes,
    list_runs,
    price_series,
    report_scope,
    trade_points,
)

__all__ = [
    "DEFAULT_LIMIT",
    "DaemonRun",
    "DailyCost",
    "DecisionCounts",
    "DecisionFilter",
    "DecisionRecord",
    "DecisionSummary",
    "EquityPoint",
    "FillRow",
    "LLMCall",
    "LLMCallFilter",
    "LLMCallSummary",
    "LevelChange",
    "OrderWithFills",
    "PricePoint",
    "ReportScope",
    "TradePoint",
    "count_decisions",
    "count_llm_calls",
    "daily_llm_costs",
    "decision_counts",
    "decision_ids_starting_with",
    "decision_pages",
    "decision_record",
    "equity_series",
    "find_run",
    "latest_run",
    "level_changes",
    "list_decisions",
    "list_llm_calls",
    "list_runs",
    "llm_call",
    "llm_call_ids_starting_with",
    "llm_call_pages",
    "price_series",
    "report_scope",
    "trade_points",
]

