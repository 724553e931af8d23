"""tickvault.exchanges.coinbase"""
