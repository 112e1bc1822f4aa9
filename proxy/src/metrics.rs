//! Prometheus metrics of the proxy, registered in one shared [`Registry`] that the admin
//! listener renders. Other crates (the authorizer) register into the same registry.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Every metric the proxy itself records.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// `poolgate_requests_total{route,status,reason}`
    pub requests: IntCounterVec,
    /// `poolgate_request_duration_seconds{route}`
    pub duration: HistogramVec,
    /// `poolgate_upstream_errors_total{upstream,kind}`
    pub upstream_errors: IntCounterVec,
    /// `poolgate_reloads_total{result}`
    pub reloads: IntCounterVec,
    /// `poolgate_config_last_reload_success_timestamp_seconds`
    pub config_loaded: IntGauge,
    /// `poolgate_upstream_healthy_targets{upstream}`, refreshed at each scrape
    pub upstream_healthy: IntGaugeVec,
    /// `poolgate_access_log_dropped_lines`, refreshed at each scrape
    pub access_log_dropped: IntGauge,
    /// `poolgate_build_info{version}` = 1
    pub build_info: IntGaugeVec,
    /// `poolgate_downstream_closed_total{reason}`
    pub downstream_closed: IntCounterVec,
    /// `poolgate_downstream_connections`
    pub downstream_open: IntGauge,
}

impl Metrics {
    /// Creates the proxy's metrics in a fresh registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        Self::with_registry(Registry::new())
    }

    /// Creates the proxy's metrics in `registry`.
    pub fn with_registry(registry: Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "poolgate_requests_total",
                "Requests answered, by route, status and decision reason",
            ),
            &["route", "status", "reason"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "poolgate_request_duration_seconds",
                "Time from request head to the end of the response, by route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["route"],
        )?;
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "poolgate_upstream_errors_total",
                "Failures talking to upstreams, by upstream and kind",
            ),
            &["upstream", "kind"],
        )?;
        let reloads = IntCounterVec::new(
            Opts::new("poolgate_reloads_total", "Configuration reloads, by result"),
            &["result"],
        )?;
        let config_loaded = IntGauge::new(
            "poolgate_config_last_reload_success_timestamp_seconds",
            "Unix time the running configuration was loaded (at start or by a reload)",
        )?;
        let upstream_healthy = IntGaugeVec::new(
            Opts::new(
                "poolgate_upstream_healthy_targets",
                "Targets currently passing health checks, by upstream",
            ),
            &["upstream"],
        )?;
        let access_log_dropped = IntGauge::new(
            "poolgate_access_log_dropped_lines",
            "Access-log lines dropped because the writer could not keep up (since start)",
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new("poolgate_build_info", "Build information; always 1"),
            &["version"],
        )?;
        let downstream_closed = IntCounterVec::new(
            Opts::new(
                "poolgate_downstream_closed_total",
                "Client connections or requests cut by a connection bound, by reason",
            ),
            &["reason"],
        )?;
        let downstream_open = IntGauge::new(
            "poolgate_downstream_connections",
            "Client connections open on the proxy listeners",
        )?;
        registry.register(Box::new(downstream_closed.clone()))?;
        registry.register(Box::new(downstream_open.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(upstream_errors.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(config_loaded.clone()))?;
        registry.register(Box::new(upstream_healthy.clone()))?;
        registry.register(Box::new(access_log_dropped.clone()))?;
        registry.register(Box::new(build_info.clone()))?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Ok(Self {
            registry,
            requests,
            duration,
            upstream_errors,
            reloads,
            config_loaded,
            upstream_healthy,
            access_log_dropped,
            build_info,
            downstream_closed,
            downstream_open,
        })
    }

    /// Counts one answered request.
    pub fn observe_request(&self, route: &str, status: u16, reason: &str, seconds: f64) {
        let mut buf = itoa_buf();
        let status = fmt_status(&mut buf, status);
        self.requests
            .with_label_values(&[route, status, reason])
            .inc();
        self.duration.with_label_values(&[route]).observe(seconds);
    }

    /// The registry, plus `extra` (the authorizer's), in Prometheus text format.
    pub fn render(&self, extra: Option<&Registry>) -> Vec<u8> {
        let mut families = self.registry.gather();
        if let Some(extra) = extra {
            families.extend(extra.gather());
        }
        let mut out = Vec::with_capacity(8 * 1024);
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&families, &mut out);
        out
    }
}

fn itoa_buf() -> [u8; 3] {
    [b'0'; 3]
}

/// Three-digit status without allocating.
fn fmt_status(buf: &mut [u8; 3], status: u16) -> &str {
    let s = status.min(999);
    *buf = [
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ];
    std::str::from_utf8(buf).unwrap_or("000")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders() {
        let m = Metrics::new().unwrap();
        m.observe_request("orders", 403, "no_statement", 0.002);
        m.observe_request("orders", 403, "no_statement", 0.003);
        m.observe_request("orders", 200, "allowed", 0.001);
        let text = String::from_utf8(m.render(None)).unwrap();
        assert!(
            text.contains(
                r#"poolgate_requests_total{reason="no_statement",route="orders",status="403"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"poolgate_request_duration_seconds_count{route="orders"} 3"#),
            "{text}"
        );
        assert!(text.contains(r#"poolgate_build_info{version=""#), "{text}");
    }

    #[test]
    fn status_formatting() {
        let mut b = itoa_buf();
        assert_eq!(fmt_status(&mut b, 204), "204");
        assert_eq!(fmt_status(&mut b, 5), "005");
        assert_eq!(fmt_status(&mut b, 1234), "999");
    }
}
