"""The resilience library every layer above builds on: circuit breakers shared through the
Django cache (`breakers`), deadlines and call budgets (`deadlines`), and the breaker event log."""
