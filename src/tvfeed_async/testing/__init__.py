"""The bundled TradingView simulator, chaos proxy and pytest plugin."""
