"""tickvault.exchanges.binance"""
