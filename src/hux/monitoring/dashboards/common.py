"""Shared pieces of the dashboards: datasource, variables, panel shorthands, thresholds.

Every query is a ``prometheus.Dataquery`` on the provisioned datasource (fixed
uid from ``grafana.datasource_uid``). Template variables are always used with
``=~`` and have ``.*`` as their "All" value, so a query stays valid whatever is
selected. Thresholds come from ``settings.alerts``: the line on a panel is
the line the alert fires at.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as dash_models
from grafana_foundation_sdk.models import prometheus as prom_models

from hux.monitoring.dashboards.queries import EMPTY_UNLESS
from hux.monitoring.rules import RecordingNames, recording_names
from hux.monitoring.settings import Settings

GREEN, YELLOW, RED, BLUE = "green", "#EAB839", "red", "blue"
#: Grafana's alert list panel type: it reads alert rules, not PromQL (no targets)
ALERT_LIST = "alertlist"
TAGS = ["hux", "mr-hux-alpha-bot"]


@dataclass(frozen=True)
class Feature:
    """A part of the bot that runs only when configured: its panels are empty without it.

    ``present`` returns data exactly when it runs; the panel checks (``hux health``, the live
    panel test) accept an empty panel of a feature only while ``present`` is empty too.
    """

    setting: str
    present: str

    @property
    def note(self) -> str:
        return f"Empty unless {self.setting} is configured (the demo does not run it)."


@dataclass
class Context:
    """What every dashboard module needs: the settings, the datasource, recording-rule names, panel ids."""

    settings: Settings
    names: RecordingNames = field(init=False)
    datasource: common_models.DataSourceRef = field(init=False)
    _next_id: int = 0
    _features: dict[int, Feature] = field(default_factory=dict)   # panel id -> the feature it shows

    def __post_init__(self) -> None:
        self.names = recording_names(self.settings)
        self.datasource = common_models.DataSourceRef(type_val="prometheus", uid=self.settings.grafana.datasource_uid)

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # --- queries ---------------------------------------------------------------------

    def query(self, expr: str, legend: str = "", *, ref: str = "A", instant: bool = False,
              fmt: prom_models.PromQueryFormat | None = None) -> prom.Dataquery:
        q = prom.Dataquery().expr(_oneline(expr)).ref_id(ref).datasource(self.datasource)
        if legend:
            q = q.legend_format(legend)
        if instant:
            q = q.instant()
        else:
            q = q.range()
        if fmt is not None:
            q = q.format(fmt)
        return q

    # --- panels --------------------------------------------------------------------------

    def timeseries(self, title: str, queries: Iterable[prom.Dataquery], *, unit: str, description: str = "",
                   width: int = 12, height: int = 8, thresholds: list[tuple[float, str]] | None = None,
                   minimum: float | None = None, maximum: float | None = None, stacked: bool = False
                   ) -> timeseries.Panel:
        panel = (
            timeseries.Panel().id(self.next_id()).title(title).datasource(self.datasource)
            .span(width).height(height).unit(unit).targets(list(queries))
            .line_width(1).fill_opacity(10 if not stacked else 35).show_points(common_models.VisibilityMode.NEVER)
            .legend(common_builders.VizLegendOptions().show_legend(True)
                    .display_mode(common_models.LegendDisplayMode.LIST)
                    .placement(common_models.LegendPlacement.BOTTOM))
            .tooltip(common_builders.VizTooltipOptions().mode(common_models.TooltipDisplayMode.MULTI)
                     .sort(common_models.SortOrder.DESCENDING))
        )
        if description:
            panel = panel.description(description)
        if minimum is not None:
            panel = panel.min(minimum)
        if maximum is not None:
            panel = panel.max(maximum)
        if stacked:
            panel = panel.stacking(common_builders.StackingConfig().mode(common_models.StackingMode.NORMAL))
        if thresholds:
            panel = (panel.thresholds(threshold_steps(thresholds))
                     .thresholds_style(common_builders.GraphThresholdsStyleConfig()
                                       .mode(common_models.GraphThresholdsStyleMode.DASHED)))
        return panel

    def stat(self, title: str, query: prom.Dataquery, *, unit: str, description: str = "", width: int = 4,
             height: int = 4, thresholds: list[tuple[float, str]] | None = None,
             mappings: list[dash_models.ValueMapping] | None = None, decimals: float | None = None) -> stat.Panel:
        panel = (
            stat.Panel().id(self.next_id()).title(title).datasource(self.datasource)
            .span(width).height(height).unit(unit).with_target(query)
            .graph_mode(common_models.BigValueGraphMode.AREA)
            .color_mode(common_models.BigValueColorMode.VALUE)
            .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
            .thresholds(threshold_steps(thresholds or [(0, GREEN)]))
        )
        if description:
            panel = panel.description(description)
        if mappings:
            panel = panel.mappings(mappings)
        if decimals is not None:
            panel = panel.decimals(decimals)
        return panel

    def bargauge(self, title: str, query: prom.Dataquery, *, unit: str, description: str = "", width: int = 12,
                 height: int = 8, thresholds: list[tuple[float, str]] | None = None,
                 maximum: float | None = None) -> bargauge.Panel:
        panel = (
            bargauge.Panel().id(self.next_id()).title(title).datasource(self.datasource)
            .span(width).height(height).unit(unit).with_target(query)
            .display_mode(common_models.BarGaugeDisplayMode.GRADIENT)
            .orientation(common_models.VizOrientation.HORIZONTAL)
            .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
            .thresholds(threshold_steps(thresholds or [(0, GREEN)]))
            .min(0)
        )
        if maximum is not None:
            panel = panel.max(maximum)
        if description:
            panel = panel.description(description)
        return panel

    def table(self, title: str, query: prom.Dataquery, *, description: str = "", width: int = 24,
              height: int = 8, hide_columns: Iterable[str] = ()) -> table.Panel:
        panel = (
            table.Panel().id(self.next_id()).title(title).datasource(self.datasource)
            .span(width).height(height).with_target(query)
        )
        hidden = list(hide_columns)
        if hidden:
            panel = panel.with_transformation(dash_models.DataTransformerConfig(
                id_val="organize", options={"excludeByName": {name: True for name in hidden}}))
        if description:
            panel = panel.description(description)
        return panel

    def alert_list(self, title: str, *, description: str = "", width: int = 24, height: int = 8,
                   max_items: int = 20) -> dash.Panel:
        """Grafana's alert list (panel type ``alertlist``): firing and pending alerts, no PromQL target.

        The SDK has no builder for it, so this is the generic panel with the options Grafana's alert list
        reads (``UnifiedAlertListOptions``). The alerts are those of the Prometheus datasource's rules (the
        rule source ``options.datasource`` names); the panel's own datasource is the Alertmanager one, where
        Grafana's Alerting pages show the same alerts with their silences.
        """
        g = self.settings.grafana
        panel = (
            dash.Panel().type(ALERT_LIST).id(self.next_id()).title(title)
            .datasource(common_models.DataSourceRef(type_val="alertmanager", uid=g.alertmanager_datasource_uid))
            .span(width).height(height)
            .options({
                "viewMode": "list", "groupMode": "default", "groupBy": [], "maxItems": max_items,
                "sortOrder": 3,   # importance: firing first
                "dashboardAlerts": False, "alertName": "", "alertInstanceLabelFilter": "",
                "showInstances": True, "datasource": g.datasource_name,
                "stateFilter": {"firing": True, "pending": True, "noData": False, "normal": False, "error": True},
            })
        )
        if description:
            panel = panel.description(description)
        return panel

    def of_feature(self, feature: Feature, panel: Builder[dash_models.Panel]) -> Builder[dash_models.Panel]:
        """``panel`` marked as one of ``feature``'s (:meth:`mark_features` writes the mark)."""
        panel_id = panel.build().id_val
        if panel_id is None:
            raise ValueError("a feature panel needs its id (Context.next_id())")
        self._features[panel_id] = feature
        return panel

    def mark_features(self, board: dict[str, Any]) -> dict[str, Any]:
        """The built board with each feature panel's :data:`EMPTY_UNLESS` (what the panel checks read), its
        description ending with why it may be empty."""
        for panel in board.get("panels") or []:
            feature = self._features.get(panel.get("id"))
            if feature is not None:
                panel[EMPTY_UNLESS] = {"setting": feature.setting, "present": feature.present}
                panel["description"] = " ".join(filter(None, (panel.get("description"), feature.note)))
        return board

    def row(self, title: str) -> dash.Row:
        return dash.Row(title).id(self.next_id())

    # --- variables -------------------------------------------------------------------------

    def query_variable(self, name: str, label: str, query: str, *, multi: bool = True,
                       include_all: bool = True) -> dash.QueryVariable:
        var = (
            dash.QueryVariable(name).label(label).datasource(self.datasource)
            .query({"query": query, "refId": f"{name}-variable"})
            .refresh(dash_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dash_models.VariableSort.ALPHABETICAL_ASC)
            .multi(multi).include_all(include_all)
        )
        if include_all:
            var = var.all_value(".*").current(dash_models.VariableOption(selected=True, text="All", value="$__all"))
        return var

    def host_variable(self) -> dash.QueryVariable:
        """``$node``: the hosts (node_exporter instances, the local one and those of ``hux targets``)."""
        return self.query_variable(HOST_VARIABLE, "Host", "label_values(node_uname_info, instance)")

    def dashboard(self, uid: str, title: str, description: str) -> dash.Dashboard:
        g = self.settings.grafana
        return (
            dash.Dashboard(title).uid(uid).description(description).tags(TAGS)
            .refresh(g.dashboard_refresh).time(g.dashboard_time_from, "now").timezone("browser")
            .readonly().tooltip(dash_models.DashboardCursorSync.CROSSHAIR)
            .link(dash.DashboardLink("Mr Hux dashboards").type(dash_models.DashboardLinkType.DASHBOARDS)
                  .tags(["hux"]).as_dropdown(True).include_vars(True).keep_time(True))
        )


#: the host selector's variable name (``instance=~"$node"`` in host panels)
HOST_VARIABLE = "node"


def threshold_steps(steps: list[tuple[float, str]]) -> dash.ThresholdsConfig:
    """``[(0, green), (0.8, yellow)]`` -> Grafana steps; the first step starts at -Infinity."""
    built = [dash_models.Threshold(None if index == 0 else value, color)
             for index, (value, color) in enumerate(sorted(steps, key=lambda s: s[0]))]
    return dash.ThresholdsConfig().mode(dash_models.ThresholdsMode.ABSOLUTE).steps(built)


def up_down_mappings() -> list[dash_models.ValueMapping]:
    return [dash_models.ValueMap(options={
        "0": dash_models.ValueMappingResult(text="DOWN", color=RED, index=0),
        "1": dash_models.ValueMappingResult(text="UP", color=GREEN, index=1),
    })]


def _oneline(expr: str) -> str:
    return " ".join(line.strip() for line in expr.strip().splitlines())


def to_json(builder: dash.Dashboard) -> dict[str, Any]:
    """The dashboard as plain JSON data (what Grafana's file provisioning reads)."""
    data: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return data
