//! Each stage's own settings, made from the file + flags: the stages know nothing of
//! [`Config`].

use super::{ms, Config};

/// Each stage's own settings, from the file + flags: the stages know nothing of [`Config`].
impl Config {
    /// The tracker's (src/track/).
    pub fn tracker(&self) -> crate::track::TrackerConfig {
        crate::track::TrackerConfig {
            max_faces: self.max_faces,
            iou_threshold: self.track_iou,
            max_missed: self.max_missed,
            age_alpha: self.age_alpha,
            gender_alpha: self.gender_alpha,
            logodds_clamp: self.gender_logodds_clamp,
            abstention: self.abstention(),
            end_after_ms: ms(self.visit_end_s),
            classify_budget: self.classify_budget,
            classify_grow: self.classify_grow,
            classify_quality_gain: self.classify_quality_gain,
            classify_refresh_ms: ms(self.classify_refresh_s),
            uniform_weights: false,
        }
    }

    /// Visits and counts' (src/visits.rs).
    pub fn visits(&self) -> crate::visits::VisitConfig {
        crate::visits::VisitConfig {
            min_dwell_ms: ms(self.min_dwell_s),
            counts_interval_ms: ms(self.counts_interval_s),
            abstention: self.abstention(),
        }
    }

    /// What `save_frames` and the `png:` display may keep on disk (src/display/png.rs).
    pub fn save_limits(&self) -> crate::display::png::FileLimits {
        crate::display::png::FileLimits {
            max_files: self.save_max_files,
            max_bytes: self.save_max_mb as u64 * 1024 * 1024,
        }
    }

    /// The motion gate's (src/motion.rs).
    pub fn motion(&self) -> crate::motion::MotionConfig {
        crate::motion::MotionConfig {
            threshold: self.motion_threshold,
            max_interval_ms: ms(self.detect_max_interval_s),
        }
    }

    /// The MQTT publisher's (src/mqtt/), `None` when `mqtt` is not set (no network at all).
    pub fn mqtt(&self) -> anyhow::Result<Option<crate::mqtt::MqttSettings>> {
        use crate::mqtt::{default_client_id, BrokerUrl, MqttSettings};
        let Some(url) = &self.mqtt else {
            return Ok(None);
        };
        let url = BrokerUrl::parse(url).map_err(|e| anyhow::anyhow!("mqtt: {e}"))?;
        let client_id = match &self.mqtt_client_id {
            Some(id) => id.clone(),
            None => default_client_id()?,
        };
        Ok(Some(MqttSettings {
            url,
            client_id,
            prefix: self.mqtt_topic_prefix.clone(),
            faces: self.mqtt_faces,
            qos: [
                self.mqtt_qos_face,
                self.mqtt_qos_visit,
                self.mqtt_qos_counts,
                self.mqtt_qos_status,
            ],
            ca: self.mqtt_ca.clone(),
            cert: self.mqtt_cert.clone(),
            key: self.mqtt_key.clone(),
            user: self.mqtt_user.clone(),
            password_file: self.mqtt_password_file.clone(),
            queue: self.mqtt_queue,
            keep_alive: std::time::Duration::from_secs(self.mqtt_keep_alive_s as u64),
            update_request: self.mqtt_update_request.clone(),
            update_state: self.mqtt_update_state.clone(),
        }))
    }
}
