"""tickvault.pipeline"""
