"""tickvault.exchanges.kraken"""
