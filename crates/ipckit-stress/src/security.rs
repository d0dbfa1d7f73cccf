use crate::run::Scenario;
pub(crate) fn scenarios() -> Vec<Scenario> {
    Vec::new()
}
